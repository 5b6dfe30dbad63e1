def query_cppn(wc, xgrid, ygrid, scale, connect_func, amp_func, phase_func):
    """Put joints on an xgrid-by-ygrid grid, scale units apart, and connect them by rules.

    Every pair of grid points (x1, y1), (x2, y2) with x2 >= x1 and y2 >= y1 is offered to
    connect_func(x1, y1, x2, y2); when it returns True, a muscle joins the two points with
    amplitude amp_func(x1, y1, x2, y2) and phase phase_func(x1, y1, x2, y2).
    Returns a dict mapping each grid point (x, y) to its joint.
    """
    points = [(x, y) for x in range(xgrid) for y in range(ygrid)]
    joints = {(x, y): wc.add_joint(x * scale, y * scale) for x, y in points}
    for x1, y1 in points:
        for x2, y2 in points:
            if x2 < x1 or y2 < y1 or (x1, y1) == (x2, y2):
                continue
            if connect_func(x1, y1, x2, y2):
                amplitude = amp_func(x1, y1, x2, y2)
                phase = phase_func(x1, y1, x2, y2)
                wc.add_muscle(joints[(x1, y1)], joints[(x2, y2)], amplitude, phase)
    return joints
