import math

from evolm.domains.sodarace import walker_creator


def make_leg(wc, hip, shoulder, foot_x, amplitude, phase):
    """A foot on the ground hung from two body joints by muscles that pull in turn."""
    foot = wc.add_joint(foot_x, 0.0)
    wc.add_muscle(hip, foot, amplitude, phase)
    wc.add_muscle(shoulder, foot, amplitude, phase + math.pi / 2)
    return foot


def make_walker():
    wc = walker_creator()
    # a stiff body, 16 units long and 4 tall, braced by both diagonals, 6 units up
    back, front = wc.add_joint(0, 6), wc.add_joint(16, 6)
    back_top, front_top = wc.add_joint(0, 10), wc.add_joint(16, 10)
    for a, b in [
        (back, front),
        (back_top, front_top),
        (back, back_top),
        (front, front_top),
        (back, front_top),
        (back_top, front),
    ]:
        wc.add_muscle(a, b)

    # the hind leg leads and the foreleg follows three quarters of a cycle later: a gallop
    make_leg(wc, back, back_top, 2.0, 0.3, 0.0)
    make_leg(wc, front, front_top, 14.0, 0.3, 1.5 * math.pi)

    return wc.get_walker()
