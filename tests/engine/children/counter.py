"""Write "1\n2\n3\n..." to stdout forever; after every write, record the total bytes written
in the file given as argv[1] (an 8-byte counter updated in place)."""

import os
import struct
import sys

fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
total = 0
n = 0
while True:
    batch = "".join(f"{i}\n" for i in range(n + 1, n + 200)).encode()
    n += 199
    view = memoryview(batch)
    while view:
        written = os.write(1, view)
        view = view[written:]
        total += written
        os.pwrite(fd, struct.pack("<Q", total), 0)
