import math

from evolm.domains.sodarace import walker_creator


def make_ring(wc, cx, cy, radius, count):
    """Add count joints evenly spaced on a circle around (cx, cy)."""
    joints = []
    for k in range(count):
        angle = 2 * math.pi * k / count
        joints.append(wc.add_joint(cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return joints


def make_walker():
    wc = walker_creator()
    count = 8
    rim = make_ring(wc, 5, 5, 5, count)
    hub = wc.add_joint(5, 5)

    for k in range(count):
        # the rim is made of bones
        wc.add_muscle(rim[k], rim[(k + 1) % count])
        # each spoke is a muscle; the phases make a wave that runs around the wheel
        wc.add_muscle(rim[k], hub, 0.3, 2 * math.pi * k / count)

    return wc.get_walker()
