from evolm.domains.sodarace import walker_creator


def make_square(wc, x0, y0, x1, y1):
    """Add the corners of the box from (x0, y0) to (x1, y1), anticlockwise from (x0, y0)."""
    return (
        wc.add_joint(x0, y0),
        wc.add_joint(x1, y0),
        wc.add_joint(x1, y1),
        wc.add_joint(x0, y1),
    )


def make_walker():
    wc = walker_creator()
    corners = make_square(wc, 0, 0, 10, 10)
    centre = wc.add_joint(5, 5)

    # the four sides are bones (amplitude 0)
    for k in range(4):
        wc.add_muscle(corners[k], corners[(k + 1) % 4])

    # one spoke to the centre is a bone; the other three are muscles, a third of a cycle apart
    wc.add_muscle(corners[0], centre)
    wc.add_muscle(corners[1], centre, 0.4, 0.0)
    wc.add_muscle(corners[2], centre, 0.4, 2.1)
    wc.add_muscle(corners[3], centre, 0.4, 4.2)

    return wc.get_walker()
