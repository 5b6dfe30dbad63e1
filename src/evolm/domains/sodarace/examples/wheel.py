import math

from evolm.domains.sodarace import walker_creator


def make_walker():
    wc = walker_creator()
    count = 8
    radius = 5.0
    rim = []
    for k in range(count):
        angle = 2 * math.pi * k / count
        rim.append(wc.add_joint(radius * math.cos(angle), radius + radius * math.sin(angle)))
    hub = wc.add_joint(0.0, radius)

    for k in range(count):
        # a stiff rim
        wc.add_muscle(rim[k], rim[(k + 1) % count])
        # the spokes pulse in a wave that goes twice around the rim each cycle, so the wheel
        # squashes into an ellipse whose long axis turns, and it rolls
        wc.add_muscle(rim[k], hub, 0.4, k * math.pi / 2)

    return wc.get_walker()
