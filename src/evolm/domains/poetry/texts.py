"""The poetry domain's own texts: seeds and few-shot examples, written for this project.

``{topic}`` in a template is replaced by the run's topic (``{Topic}``: capitalised), so seeds and
the quality question's examples fit any topic.
"""

from __future__ import annotations

__all__ = ["AXIS_EXAMPLES", "BAD_EXAMPLES", "GOOD_TEMPLATES", "SEED_TEMPLATES"]

SEED_TEMPLATES: dict[str, tuple[str, ...]] = {
    "poem": (
        "I walk beside {topic} at dawn,\n"
        "a silver hush, a breath withdrawn,\n"
        "and every bright and shining thing\n"
        "begins to glow, begins to sing.\n",
        "{Topic} keeps its secrets\n"
        "under grey light.\n"
        "I stand alone and listen,\n"
        "cold hands, old grief,\n"
        "nothing answers.\n",
        "Morning comes to {topic}:\n"
        "warm colours, a soft wind,\n"
        "laughter somewhere near,\n"
        "and I am glad to be here.\n",
        "When night falls over {topic}\n"
        "the shadows fade to black;\n"
        "I lost my way there long ago\n"
        "and never found the track.\n",
    ),
    "story": (
        "Every evening Mara walked to {topic} to think. One night a pale figure stood where "
        "the path should be, and it whispered her name in her dead mother's voice. She ran, "
        "but the whisper followed her home, and in the morning her bed was empty and cold.\n",
        "Tom had come to {topic} to forget the city. On the third day he met Lena, who laughed "
        "at his terrible map and offered to show him the way. They walked until dusk, then "
        "all summer, and in the autumn they came back together, hand in hand, to be married.\n",
        "The old keeper of {topic} wrote one letter every year to the son who never answered. "
        "This year a reply came: he was coming home. The keeper swept the floor, set two cups "
        "on the table, and smiled at the door all afternoon.\n",
        "They said nothing lived near {topic} any more. Jonah went anyway, with a lamp and a "
        "knife. He found the creature's bones, and then he found the creature, and no one in "
        "the village ever saw him again.\n",
    ),
}

#: Texts a judge should call well-written texts about the topic ("yes").
GOOD_TEMPLATES: dict[str, str] = {
    "poem": "Slow light moves across {topic},\n"
    "touching every stone and leaf;\n"
    "I hold the moment like a shell\n"
    "and hear in it both joy and grief.\n",
    "story": "Ana reached {topic} just before the storm. She had come to scatter her "
    "grandfather's ashes, but the wind rose and she laughed, because he had always hated "
    "ceremonies. She opened the jar, and the wind did the rest.\n",
}
#: Texts a judge should not call well-written texts about any topic ("no").
BAD_EXAMPLES: dict[str, str] = {
    "poem": "the the the poem poem\nwords words words words\nand and and and\n",
    "story": "Story story. Then a thing happened and then another thing happened and then "
    "it was done the end the end.\n",
}
#: Few-shot examples of each axis question: ``{axis: ((text, option), ...)}``.
AXIS_EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "tone": (
        (
            "Sunlight in the kitchen,\nbread warm on the table,\nthe children laughing.\n",
            "happy",
        ),
        ("The chair by the window\nstays empty now.\nI keep your coat on its hook.\n", "sad"),
    ),
    "form": (
        ("The cat sat on the garden wall\nand watched the autumn leaves fall.\n", "rhyming"),
        ("Rain on the tin roof.\nSomewhere a dog barks,\nthen stops.\n", "free verse"),
    ),
    "genre": (
        (
            "The knocking came from inside the wall, and when Sam pulled the bricks away he "
            "found the face of the girl who had vanished forty years ago, still smiling.\n",
            "horror",
        ),
        (
            "Every morning for a year Eli left a coffee on Rosa's desk without a note. On "
            "Valentine's Day she left one on his, with her number on the cup.\n",
            "romance",
        ),
    ),
    "ending": (
        (
            "The dog had been lost for a week. On the eighth morning it was sitting on the "
            "porch, muddy and thin, wagging its tail, and the whole family ran out to hug it.\n",
            "happy",
        ),
        (
            "The soldier wrote that he would be home for Christmas. The letter arrived on "
            "Christmas Eve, two days after the telegram.\n",
            "tragic",
        ),
    ),
}
