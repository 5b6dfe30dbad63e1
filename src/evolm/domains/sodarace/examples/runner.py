from evolm.domains.sodarace import query_cppn, walker_creator


def make_walker():
    wc = walker_creator()

    def connect(x1, y1, x2, y2):
        # a grid braced by its diagonals
        return (x1 - x2) ** 2 + (y1 - y2) ** 2 <= 4

    def amp(x1, y1, x2, y2):
        # only the muscles that start on the bottom row move: they are the feet
        return 0.5 if y1 == 0 else 0.0

    def phase(x1, y1, x2, y2):
        # a wave running from front to back along the feet
        return x1 + 3 * y1

    query_cppn(wc, 6, 3, 2.5, connect, amp, phase)
    return wc.get_walker()
