"""Write OUT bytes to stdout and ERR bytes to stderr at the same time, in BLOCK-sized writes.

Usage: flood.py OUT ERR [BLOCK]. Content is a repeating pattern so it can be checked.
"""

import os
import sys
import threading


def pump(fd: int, total: int, block: int, byte: bytes) -> None:
    chunk = (byte * 63 + b"\n") * (block // 64)
    left = total
    while left > 0:
        view = memoryview(chunk)[: min(left, len(chunk))]
        while view:
            n = os.write(fd, view)
            view = view[n:]
            left -= n


out, err = int(sys.argv[1]), int(sys.argv[2])
block = int(sys.argv[3]) if len(sys.argv) > 3 else 1 << 20
t = threading.Thread(target=pump, args=(2, err, block, b"e"))
t.start()
pump(1, out, block, b"o")
t.join()
