from evolm.domains.sodarace import query_cppn, walker_creator


def make_walker():
    wc = walker_creator()

    def connect(x1, y1, x2, y2):
        # join grid points that are close together
        return (x1 - x2) ** 2 + (y1 - y2) ** 2 <= 5

    def amp(x1, y1, x2, y2):
        # longer connections move more; horizontal ones are bones
        if y1 == y2:
            return 0.0
        return 0.2 * max(abs(x1 - x2), abs(y1 - y2))

    def phase(x1, y1, x2, y2):
        # a wave travelling along the body
        return 0.8 * x1

    query_cppn(wc, 8, 3, 1.5, connect, amp, phase)
    return wc.get_walker()
