#!/usr/bin/env python3
"""Set V4L2 controls: v4l2ctl.py DEVICE ID=VALUE ... (VIDIOC_S_CTRL; ids in hex or decimal).

Used inside the VM test (run from the host root through chroot) to drive vivid: test
pattern, on-screen text, and its "Disconnect" button (a simulated unplug)."""
import fcntl
import os
import struct
import sys
import time

VIDIOC_S_CTRL = 0xC008561C  # _IOWR('V', 28, struct v4l2_control)


def main() -> int:
    dev = sys.argv[1]
    deadline = time.monotonic() + 10.0
    while True:
        try:
            fd = os.open(dev, os.O_RDWR)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    for spec in sys.argv[2:]:
        cid, value = spec.split("=")
        fcntl.ioctl(fd, VIDIOC_S_CTRL, struct.pack("Ii", int(cid, 0), int(value, 0)))
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
