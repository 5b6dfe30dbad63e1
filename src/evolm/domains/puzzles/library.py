"""The puzzles evolm ships: original programming puzzles in the P3 format, graded 1 to 5.

Each puzzle is a :class:`~evolm.domains.puzzles.puzzle.Puzzle`: the source of ``f(answer,
...instance) -> bool`` whose first parameter's annotation is the answer's type and whose other
parameters carry the instance as defaults, a reference solution ``g(...instance)`` (called with
no arguments), a grade from 1 (trivial) to 5 (hard) and skill tags. The tests check that every
reference solution solves its puzzle through the sandbox. These puzzles were written for evolm;
none is taken from the P3 repository.
"""

from __future__ import annotations

from evolm.domains.puzzles.puzzle import Puzzle

__all__ = ["LIBRARY"]

_P = Puzzle

LIBRARY: tuple[Puzzle, ...] = (
    # ---- grade 1: one step ------------------------------------------------------------------
    _P(
        "concat_words",
        1,
        'def f(s: str, a="evo", b="lution") -> bool:\n    return s == a + b\n',
        'def g(a="evo", b="lution"):\n    return a + b\n',
        ("strings",),
    ),
    _P(
        "difference",
        1,
        "def f(n: int, a=1234, b=-987) -> bool:\n    return n + b == a\n",
        "def g(a=1234, b=-987):\n    return a - b\n",
        ("arithmetic",),
    ),
    _P(
        "squares_list",
        1,
        "def f(li: list[int], n=12) -> bool:\n"
        "    return len(li) == n and all(li[i] == i * i for i in range(n))\n",
        "def g(n=12):\n    return [i * i for i in range(n)]\n",
        ("lists", "arithmetic"),
    ),
    _P(
        "shout",
        1,
        'def f(s: str, word="mapelites") -> bool:\n'
        "    return s.upper() == s and s.lower() == word\n",
        'def g(word="mapelites"):\n    return word.upper()\n',
        ("strings",),
    ),
    _P(
        "odd_above",
        1,
        "def f(x: int, lo=10**9) -> bool:\n    return x > lo and x % 2 == 1\n",
        "def g(lo=10**9):\n    return lo + 1 if lo % 2 == 0 else lo + 2\n",
        ("arithmetic",),
    ),
    _P(
        "backwards",
        1,
        'def f(s: str, t="quality diversity") -> bool:\n    return s[::-1] == t\n',
        'def g(t="quality diversity"):\n    return t[::-1]\n',
        ("strings",),
    ),
    # ---- grade 2: a small construction ------------------------------------------------------
    _P(
        "half_vowels",
        2,
        "def f(s: str, n=9) -> bool:\n"
        '    return len(s) == 2 * n and s.isalpha() and sum(c in "aeiou" for c in s) == n\n',
        'def g(n=9):\n    return "ba" * n\n',
        ("strings", "counting"),
    ),
    _P(
        "increasing_zero_sum",
        2,
        "def f(li: list[int], n=8, lo=-5) -> bool:\n"
        "    return (len(li) == n and all(a < b for a, b in zip(li, li[1:]))\n"
        "            and min(li) >= lo and sum(li) == 0)\n",
        "def g(n=8, lo=-5):\n    return [i for i in range(-(n // 2), n // 2 + 1) if i != 0]\n",
        ("lists", "arithmetic"),
    ),
    _P(
        "digit_sum",
        2,
        "def f(n: int, s=50, d=8) -> bool:\n"
        "    return n > 0 and len(str(n)) == d and sum(int(c) for c in str(n)) == s\n",
        "def g(s=50, d=8):\n"
        "    digits = []\n"
        "    for _ in range(d):\n"
        "        digits.append(min(9, s))\n"
        "        s -= digits[-1]\n"
        '    return int("".join(map(str, digits)))\n',
        ("number_theory", "strings"),
    ),
    _P(
        "palindrome_prefix",
        2,
        'def f(s: str, prefix="evolve", n=15) -> bool:\n'
        "    return s == s[::-1] and s.startswith(prefix) and len(s) == n\n",
        'def g(prefix="evolve", n=15):\n'
        '    return prefix + "a" * (n - 2 * len(prefix)) + prefix[::-1]\n',
        ("strings",),
    ),
    _P(
        "find_position",
        2,
        "def f(i: int, li=[17, 4, 99, -3, 42, 8, 42], target=-3) -> bool:\n"
        "    return 0 <= i < len(li) and li[i] == target\n",
        "def g(li=[17, 4, 99, -3, 42, 8, 42], target=-3):\n    return li.index(target)\n",
        ("lists", "search"),
    ),
    _P(
        "modular_inverse",
        2,
        "def f(x: int, a=17, m=3120) -> bool:\n    return 0 <= x < m and (a * x) % m == 1\n",
        "def g(a=17, m=3120):\n"
        "    for x in range(m):\n"
        "        if (a * x) % m == 1:\n"
        "            return x\n",
        ("number_theory", "search"),
    ),
    _P(
        "gcd_pair",
        2,
        "def f(pair: list[int], d=12, lo=100) -> bool:\n"
        "    import math\n"
        "    return len(pair) == 2 and min(pair) > lo and pair[0] != pair[1] "
        "and math.gcd(*pair) == d\n",
        "def g(d=12, lo=100):\n    k = lo // d + 1\n    return [d * k, d * (k + 1)]\n",
        ("number_theory",),
    ),
    # ---- grade 3: a loop or a search --------------------------------------------------------
    _P(
        "two_sum",
        3,
        "def f(ij: list[int], nums=[31, -7, 58, 12, 90, -41, 23, 66], target=49) -> bool:\n"
        "    return (len(ij) == 2 and ij[0] != ij[1] and all(0 <= i < len(nums) for i in ij)\n"
        "            and nums[ij[0]] + nums[ij[1]] == target)\n",
        "def g(nums=[31, -7, 58, 12, 90, -41, 23, 66], target=49):\n"
        "    for i in range(len(nums)):\n"
        "        for j in range(i + 1, len(nums)):\n"
        "            if nums[i] + nums[j] == target:\n"
        "                return [i, j]\n",
        ("lists", "search"),
    ),
    _P(
        "prime_in_range",
        3,
        "def f(p: int, lo=10**6, hi=10**6 + 40) -> bool:\n"
        "    return lo <= p <= hi and p > 1 and all(p % d for d in range(2, int(p**0.5) + 1))\n",
        "def g(lo=10**6, hi=10**6 + 40):\n"
        "    for p in range(lo, hi + 1):\n"
        "        if all(p % d for d in range(2, int(p**0.5) + 1)):\n"
        "            return p\n",
        ("number_theory", "search"),
    ),
    _P(
        "diagonal_matrix",
        3,
        "def f(m: list[list[int]], n=4, t=10) -> bool:\n"
        "    flat = [x for row in m for x in row]\n"
        "    return (len(m) == n and all(len(row) == n for row in m)\n"
        "            and len(set(flat)) == n * n and sum(m[i][i] for i in range(n)) == t\n"
        "            and sum(m[i][n - 1 - i] for i in range(n)) == t)\n",
        "def g(n=4, t=10):\n"
        "    m = [[100 + n * i + j for j in range(n)] for i in range(n)]\n"
        "    for i in range(n):\n"
        "        m[i][i] = i + 1\n"
        "        m[i][n - 1 - i] = -(i + 1)\n"
        "    m[0][0] += t - sum(m[i][i] for i in range(n))\n"
        "    m[0][n - 1] += t - sum(m[i][n - 1 - i] for i in range(n))\n"
        "    return m\n",
        ("lists", "arithmetic"),
    ),
    _P(
        "balanced_brackets",
        3,
        "def f(s: str, n=6) -> bool:\n"
        "    depth = 0\n"
        "    for c in s:\n"
        '        depth += {"(": 1, ")": -1}.get(c, 99)\n'
        "        if depth < 0 or depth > 50:\n"
        "            return False\n"
        '    return depth == 0 and len(s) == 2 * n and "(((" in s and "()()" in s\n',
        'def g(n=6):\n    return "(((" + ")))" + "()" * (n - 3)\n',
        ("strings", "counting"),
    ),
    _P(
        "fibonacci_index",
        3,
        "def f(i: int, value=4181) -> bool:\n"
        "    a, b = 0, 1\n"
        "    for _ in range(max(0, min(i, 10**4))):\n"
        "        a, b = b, a + b\n"
        "    return i >= 0 and a == value\n",
        "def g(value=4181):\n"
        "    a, b, i = 0, 1, 0\n"
        "    while a != value:\n"
        "        a, b, i = b, a + b, i + 1\n"
        "    return i\n",
        ("number_theory", "search"),
    ),
    _P(
        "hanoi",
        3,
        "def f(moves: list[list[int]], n=5) -> bool:\n"
        "    pegs = [list(range(n, 0, -1)), [], []]\n"
        "    for mv in moves:\n"
        "        if len(mv) != 2 or not all(0 <= p < 3 for p in mv) or not pegs[mv[0]]:\n"
        "            return False\n"
        "        disk = pegs[mv[0]].pop()\n"
        "        if pegs[mv[1]] and pegs[mv[1]][-1] < disk:\n"
        "            return False\n"
        "        pegs[mv[1]].append(disk)\n"
        "    return pegs[2] == list(range(n, 0, -1)) and len(moves) == 2**n - 1\n",
        "def g(n=5):\n"
        "    def move(k, a, b, c):\n"
        "        if k == 0:\n"
        "            return []\n"
        "        return move(k - 1, a, c, b) + [[a, c]] + move(k - 1, b, a, c)\n"
        "    return move(n, 0, 1, 2)\n",
        ("recursion", "lists"),
    ),
    _P(
        "binomial_value",
        3,
        "def f(nk: list[int], value=3003) -> bool:\n"
        "    import math\n"
        "    return len(nk) == 2 and 2 < nk[1] < nk[0] - 2 < 200 and math.comb(*nk) == value\n",
        "def g(value=3003):\n"
        "    import math\n"
        "    for n in range(200):\n"
        "        for k in range(3, n - 2):\n"
        "            if math.comb(n, k) == value:\n"
        "                return [n, k]\n",
        ("combinatorics", "search"),
    ),
    _P(
        "chinese_remainder",
        3,
        "def f(x: int, rems=[2, 3, 2, 6], mods=[3, 5, 7, 11]) -> bool:\n"
        "    return x > 0 and all(x % m == r for r, m in zip(rems, mods))\n",
        "def g(rems=[2, 3, 2, 6], mods=[3, 5, 7, 11]):\n"
        "    x = 1\n"
        "    while not all(x % m == r for r, m in zip(rems, mods)):\n"
        "        x += 1\n"
        "    return x\n",
        ("number_theory", "search"),
    ),
    # ---- grade 4: an algorithm --------------------------------------------------------------
    _P(
        "subset_sum",
        4,
        "def f(idx: list[int], nums=[913, 412, 77, 658, 231, 842, 19, 566, 305, 999, 128, 444,"
        " 871, 63, 720], target=4321) -> bool:\n"
        "    return (len(set(idx)) == len(idx) and all(0 <= i < len(nums) for i in idx)\n"
        "            and sum(nums[i] for i in idx) == target)\n",
        "def g(nums=[913, 412, 77, 658, 231, 842, 19, 566, 305, 999, 128, 444, 871, 63, 720],"
        " target=4321):\n"
        "    reach = {0: []}\n"
        "    for i, x in enumerate(nums):\n"
        "        for s, idx in list(reach.items()):\n"
        "            if s + x not in reach:\n"
        "                reach[s + x] = idx + [i]\n"
        "    return reach[target]\n",
        ("lists", "search", "combinatorics"),
    ),
    _P(
        "queens",
        4,
        "def f(cols: list[int], n=9) -> bool:\n"
        "    return (sorted(cols) == list(range(n))\n"
        "            and len({c + r for r, c in enumerate(cols)}) == n\n"
        "            and len({c - r for r, c in enumerate(cols)}) == n)\n",
        "def g(n=9):\n"
        "    def place(cols):\n"
        "        if len(cols) == n:\n"
        "            return cols\n"
        "        r = len(cols)\n"
        "        for c in range(n):\n"
        "            if all(c != d and abs(c - d) != r - q for q, d in enumerate(cols)):\n"
        "                found = place(cols + [c])\n"
        "                if found:\n"
        "                    return found\n"
        "        return None\n"
        "    return place([])\n",
        ("search", "recursion", "combinatorics"),
    ),
    _P(
        "spread_letters",
        4,
        'def f(s: str, word="mississippi") -> bool:\n'
        "    return sorted(s) == sorted(word) and all(a != b for a, b in zip(s, s[1:]))\n",
        'def g(word="mississippi"):\n'
        "    counts = {c: word.count(c) for c in set(word)}\n"
        '    out = ""\n'
        "    while len(out) < len(word):\n"
        "        options = [c for c in counts if counts[c] and (not out or c != out[-1])]\n"
        "        c = max(options, key=lambda c: (counts[c], c))\n"
        "        out += c\n"
        "        counts[c] -= 1\n"
        "    return out\n",
        ("strings", "combinatorics"),
    ),
    _P(
        "magic_square",
        4,
        "def f(m: list[list[int]], n=5) -> bool:\n"
        "    t = n * (n * n + 1) // 2\n"
        "    if len(m) != n or any(len(r) != n for r in m):\n"
        "        return False\n"
        "    if sorted(x for r in m for x in r) != list(range(1, n * n + 1)):\n"
        "        return False\n"
        "    lines = m + [list(c) for c in zip(*m)]\n"
        "    lines += [[m[i][i] for i in range(n)], [m[i][n - 1 - i] for i in range(n)]]\n"
        "    return all(sum(line) == t for line in lines)\n",
        "def g(n=5):\n"
        "    m = [[0] * n for _ in range(n)]\n"
        "    i, j = 0, n // 2\n"
        "    for k in range(1, n * n + 1):\n"
        "        m[i][j] = k\n"
        "        a, b = (i - 1) % n, (j + 1) % n\n"
        "        if m[a][b]:\n"
        "            a, b = (i + 1) % n, j\n"
        "        i, j = a, b\n"
        "    return m\n",
        ("arithmetic", "combinatorics", "lists"),
    ),
    _P(
        "triple_perimeter",
        4,
        "def f(t: list[int], s=1320) -> bool:\n"
        "    return (len(t) == 3 and 0 < t[0] < t[1] < t[2] and sum(t) == s\n"
        "            and t[0] ** 2 + t[1] ** 2 == t[2] ** 2)\n",
        "def g(s=1320):\n"
        "    for a in range(1, s // 3):\n"
        "        num, den = s * s - 2 * s * a, 2 * (s - a)\n"
        "        if num % den == 0 and a < num // den:\n"
        "            b = num // den\n"
        "            return [a, b, s - a - b]\n",
        ("number_theory", "arithmetic", "search"),
    ),
    _P(
        "longest_increasing",
        4,
        "def f(idx: list[int], seq=[5, 1, 9, 3, 7, 2, 8, 6, 4, 10, 0, 11, 5, 12], k=7) -> bool:\n"
        "    return (len(idx) == k and all(0 <= i < len(seq) for i in idx)\n"
        "            and all(i < j and seq[i] < seq[j] for i, j in zip(idx, idx[1:])))\n",
        "def g(seq=[5, 1, 9, 3, 7, 2, 8, 6, 4, 10, 0, 11, 5, 12], k=7):\n"
        "    best = [[i] for i in range(len(seq))]\n"
        "    for j in range(len(seq)):\n"
        "        for i in range(j):\n"
        "            if seq[i] < seq[j] and len(best[i]) + 1 > len(best[j]):\n"
        "                best[j] = best[i] + [j]\n"
        "    return max(best, key=len)\n",
        ("lists", "search"),
    ),
    _P(
        "egyptian_fraction",
        4,
        "def f(dens: list[int], num=4, den=13) -> bool:\n"
        "    from fractions import Fraction\n"
        "    return (0 < len(dens) <= 3 and 0 < dens[0]\n"
        "            and all(a < b for a, b in zip(dens, dens[1:]))\n"
        "            and sum(Fraction(1, d) for d in dens) == Fraction(num, den))\n",
        "def g(num=4, den=13):\n"
        "    from fractions import Fraction\n"
        "    rest, dens = Fraction(num, den), []\n"
        "    while rest:\n"
        "        d = -(-rest.denominator // rest.numerator)\n"
        "        dens.append(d)\n"
        "        rest -= Fraction(1, d)\n"
        "    return dens\n",
        ("number_theory", "arithmetic"),
    ),
    _P(
        "two_squares",
        4,
        "def f(ab: list[int], n=1000000009) -> bool:\n"
        "    return len(ab) == 2 and ab[0] ** 2 + ab[1] ** 2 == n\n",
        "def g(n=1000000009):\n"
        "    import math\n"
        "    for a in range(math.isqrt(n) + 1):\n"
        "        b = math.isqrt(n - a * a)\n"
        "        if a * a + b * b == n:\n"
        "            return [a, b]\n",
        ("number_theory", "search"),
    ),
    # ---- grade 5: a real search -------------------------------------------------------------
    _P(
        "sudoku",
        5,
        "def f(grid: list[list[int]], givens=[\n"
        '        ".1...63.2", "5..3..9.8", "342......", ".8..63..9", ".6..2.185",\n'
        '        ".2.1.....", "..7.3..91", "..4...8..", "291..7.34"]) -> bool:\n'
        "    if len(grid) != 9 or any(len(r) != 9 for r in grid):\n"
        "        return False\n"
        "    for r in range(9):\n"
        "        for c in range(9):\n"
        '            if givens[r][c] != "." and grid[r][c] != int(givens[r][c]):\n'
        "                return False\n"
        "    units = [row for row in grid] + [list(col) for col in zip(*grid)]\n"
        "    units += [[grid[3 * a + i][3 * b + j] for i in range(3) for j in range(3)]\n"
        "              for a in range(3) for b in range(3)]\n"
        "    return all(sorted(u) == list(range(1, 10)) for u in units)\n",
        "def g(givens=[\n"
        '        ".1...63.2", "5..3..9.8", "342......", ".8..63..9", ".6..2.185",\n'
        '        ".2.1.....", "..7.3..91", "..4...8..", "291..7.34"]):\n'
        '    grid = [[0 if ch == "." else int(ch) for ch in row] for row in givens]\n'
        "    def ok(r, c, v):\n"
        "        if v in grid[r] or any(grid[i][c] == v for i in range(9)):\n"
        "            return False\n"
        "        a, b = 3 * (r // 3), 3 * (c // 3)\n"
        "        return all(grid[a + i][b + j] != v for i in range(3) for j in range(3))\n"
        "    def solve():\n"
        "        for r in range(9):\n"
        "            for c in range(9):\n"
        "                if grid[r][c] == 0:\n"
        "                    for v in range(1, 10):\n"
        "                        if ok(r, c, v):\n"
        "                            grid[r][c] = v\n"
        "                            if solve():\n"
        "                                return True\n"
        "                            grid[r][c] = 0\n"
        "                    return False\n"
        "        return True\n"
        "    solve()\n"
        "    return grid\n",
        ("search", "recursion", "combinatorics"),
    ),
    _P(
        "knight_tour",
        5,
        "def f(path: list[list[int]], n=6) -> bool:\n"
        "    cells = {(p[0], p[1]) for p in path if len(p) == 2}\n"
        "    if len(path) != n * n or cells != {(r, c) for r in range(n) for c in range(n)}:\n"
        "        return False\n"
        "    return all(sorted([abs(a[0] - b[0]), abs(a[1] - b[1])]) == [1, 2]\n"
        "               for a, b in zip(path, path[1:]))\n",
        "def g(n=6):\n"
        "    steps = [(1, 2), (2, 1), (-1, 2), (-2, 1), (1, -2), (2, -1), (-1, -2), (-2, -1)]\n"
        "    seen = set()\n"
        "    def free(r, c):\n"
        "        return [(r + a, c + b) for a, b in steps\n"
        "                if 0 <= r + a < n and 0 <= c + b < n and (r + a, c + b) not in seen]\n"
        "    def tour(path):\n"
        "        if len(path) == n * n:\n"
        "            return path\n"
        "        r, c = path[-1]\n"
        "        for nxt in sorted(free(r, c), key=lambda p: len(free(*p))):\n"
        "            seen.add(nxt)\n"
        "            done = tour(path + [nxt])\n"
        "            if done:\n"
        "                return done\n"
        "            seen.discard(nxt)\n"
        "        return None\n"
        "    seen.add((0, 0))\n"
        "    return [list(p) for p in tour([(0, 0)])]\n",
        ("search", "recursion"),
    ),
    _P(
        "three_colouring",
        5,
        "def f(colours: list[int], edges=[[0, 1], [1, 2], [2, 3], [3, 4], [4, 0], [0, 5],"
        " [1, 6], [2, 7], [3, 8], [4, 9], [5, 7], [7, 9], [9, 6], [6, 8], [8, 5]]) -> bool:\n"
        "    return (len(colours) == 10 and set(colours) <= {0, 1, 2}\n"
        "            and all(colours[a] != colours[b] for a, b in edges))\n",
        "def g(edges=[[0, 1], [1, 2], [2, 3], [3, 4], [4, 0], [0, 5], [1, 6], [2, 7], [3, 8],"
        " [4, 9], [5, 7], [7, 9], [9, 6], [6, 8], [8, 5]]):\n"
        "    import itertools\n"
        "    for colours in itertools.product(range(3), repeat=10):\n"
        "        if all(colours[a] != colours[b] for a, b in edges):\n"
        "            return list(colours)\n",
        ("search", "combinatorics"),
    ),
    _P(
        "word_ladder",
        5,
        'def f(path: list[str], start="cold", end="warm", words=["cord", "card", "ward", "word",'
        ' "worm", "corm", "wore", "core", "care", "ware", "warm", "cold", "wold", "bold"])'
        " -> bool:\n"
        "    return (0 < len(path) <= 5 and path[0] == start and path[-1] == end\n"
        "            and all(w in words for w in path)\n"
        "            and all(sum(x != y for x, y in zip(a, b)) == 1 and len(a) == len(b)\n"
        "                    for a, b in zip(path, path[1:])))\n",
        'def g(start="cold", end="warm", words=["cord", "card", "ward", "word", "worm", "corm",'
        ' "wore", "core", "care", "ware", "warm", "cold", "wold", "bold"]):\n'
        "    paths, seen = [[start]], {start}\n"
        "    while paths:\n"
        "        path = paths.pop(0)\n"
        "        if path[-1] == end:\n"
        "            return path\n"
        "        for w in words:\n"
        "            if w not in seen and sum(x != y for x, y in zip(w, path[-1])) == 1:\n"
        "                seen.add(w)\n"
        "                paths.append(path + [w])\n",
        ("strings", "search"),
    ),
    _P(
        "discrete_log",
        5,
        "def f(x: int, base=5, h=424242, p=1000003) -> bool:\n"
        "    return 0 <= x < p and pow(base, x, p) == h\n",
        "def g(base=5, h=424242, p=1000003):\n"
        "    import math\n"
        "    m = math.isqrt(p) + 1\n"
        "    table = {pow(base, j, p): j for j in range(m)}\n"
        "    step, y = pow(base, -m, p), h\n"
        "    for i in range(m):\n"
        "        if y in table:\n"
        "            return i * m + table[y]\n"
        "        y = y * step % p\n",
        ("number_theory", "search"),
    ),
    _P(
        "cheapest_route",
        5,
        "def f(route: list[int], roads=[[0, 1, 7], [0, 2, 9], [0, 5, 14], [1, 2, 10],"
        " [1, 3, 15], [2, 3, 11], [2, 5, 2], [3, 4, 6], [4, 5, 9], [3, 6, 4], [4, 6, 12]],"
        " goal=6, best=24) -> bool:\n"
        "    cost = {}\n"
        "    for a, b, w in roads:\n"
        "        cost[a, b] = cost[b, a] = w\n"
        "    return (len(route) >= 2 and route[0] == 0 and route[-1] == goal\n"
        "            and all((a, b) in cost for a, b in zip(route, route[1:]))\n"
        "            and sum(cost[a, b] for a, b in zip(route, route[1:])) == best)\n",
        "def g(roads=[[0, 1, 7], [0, 2, 9], [0, 5, 14], [1, 2, 10], [1, 3, 15], [2, 3, 11],"
        " [2, 5, 2], [3, 4, 6], [4, 5, 9], [3, 6, 4], [4, 6, 12]], goal=6, best=24):\n"
        "    import heapq\n"
        "    heap, done = [(0, [0])], set()\n"
        "    while heap:\n"
        "        d, path = heapq.heappop(heap)\n"
        "        if path[-1] == goal:\n"
        "            return path\n"
        "        if path[-1] in done:\n"
        "            continue\n"
        "        done.add(path[-1])\n"
        "        for a, b, w in roads:\n"
        "            for u, v in ((a, b), (b, a)):\n"
        "                if u == path[-1] and v not in done:\n"
        "                    heapq.heappush(heap, (d + w, path + [v]))\n",
        ("search", "lists"),
    ),
)
