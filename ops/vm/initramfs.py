"""The guest initramfs: busybox-static, the kernel modules and an ``/init`` that boots into the
host's own root file system, shared read-only over 9p.

Boot sequence inside the guest (``/init``, busybox ash):

1. mount proc/sys/devtmpfs, ``insmod`` the modules in dependency order (``/modules.order``);
2. mount the host root (9p tag ``hostroot``, read-only) on ``/host`` and build ``/newroot`` as
   an overlay of it with a tmpfs upper layer, so the guest runs the host's binaries (pppd and
   its pppoe plugin, xl2tpd, iperf3, python3, the project's ``.venv``) and may write anywhere
   without touching the host; fresh tmpfs on ``/tmp`` and ``/run``, proc/sys/dev/devpts;
3. mount the writable per-guest share (9p tag ``share``) at the SAME path as on the host
   (``vmlab.share=`` on the kernel command line), so paths of configs, logs and results are
   identical on both sides;
4. ``exec`` busybox ``init`` (reaps orphans), which respawns the command agent
   (:data:`AGENT`, chrooted into ``/newroot``, the host's ``python3 -S``) on the virtio-serial
   port named ``vmlab``.

Agent protocol (one line each way): host sends ``<id> <timeout s> <base64 script>``; the agent
runs the script with ``/bin/sh -c`` in its own session (stdin /dev/null, stdout+stderr
captured) in a thread, kills its process group after the timeout (exit code 124) and answers
``R <id> <exit code> <base64 output>``. A negative timeout starts the script as a background
job instead (own session, reaped by the agent) and answers its pid. One process per command:
a shell agent cost ~7 execs per command, about a second each under TCG on a loaded host.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from ops.vm.kernel import CACHE_DIR, GUEST_MODULES, KernelImage, ensure_kernel

__all__ = ["AGENT", "INIT", "READY_MARK", "build_initramfs", "cpio_newc"]

READY_MARK = "vmlab: agent ready"
FAIL_MARK = "vmlab: FATAL"

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "vmlab: FATAL: $*" > /dev/console; sleep 2; echo o > /proc/sysrq-trigger; }
for m in $(cat /modules.order); do
    insmod "/lib/modules/$m.ko" 2>/dev/console || echo "vmlab: insmod $m failed" > /dev/console
done
SHARE=
NAME=guest
KEEP=
for a in $(cat /proc/cmdline); do
    case "$a" in
        vmlab.share=*) SHARE="${a#vmlab.share=}" ;;
        vmlab.keep=*) KEEP="$KEEP ${a#vmlab.keep=}" ;;
        vmlab.name=*) NAME="${a#vmlab.name=}" ;;
    esac
done
hostname "$NAME"
mkdir -p /host /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host \
    || fail "cannot mount the host root over 9p"
mount -t tmpfs -o mode=755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
    || fail "cannot mount the overlay root"
R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
ln -sf pts/ptmx $R/dev/ptmx 2>/dev/null
mount -t tmpfs tmpfs $R/dev/shm
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
mount -t tmpfs -o mode=755 tmpfs $R/run
for P in $KEEP; do
    mkdir -p "$R$P" && mount -o bind "/host$P" "$R$P" || fail "cannot keep the host's $P"
done
mkdir -p $R/run/lock $R/run/vmlab/cmd $R/var/log $R/var/lib
if [ -n "$SHARE" ]; then
    mkdir -p "$R$SHARE"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 share "$R$SHARE" \
        || fail "cannot mount the share at $SHARE"
fi
echo "$NAME" > $R/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$NAME" > $R/etc/hosts
cp /agent.py $R/run/vmlab/agent.py
chroot $R /sbin/ip link set lo up 2>/dev/null || ip link set lo up
cat > /etc/inittab <<EOF
::respawn:/bin/chroot $R /usr/bin/python3 -S -u /run/vmlab/agent.py
::ctrlaltdel:/bin/poweroff -f
EOF
exec /bin/busybox init
"""

AGENT = r"""# vmlab command agent: runs chrooted in the guest's root with the host's python3 (-S).
import base64
import os
import signal
import subprocess
import sys
import threading
import time

os.environ.update(
    PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME="/root",
    LANG="C.UTF-8",
)


def console(text):
    with open("/dev/console", "w") as f:
        f.write(text + "\n")


def find_port():
    base = "/sys/class/virtio-ports"
    for name in sorted(os.listdir(base)):
        try:
            with open(f"{base}/{name}/name") as f:
                if f.read().strip() == "vmlab":
                    return "/dev/" + name
        except OSError:
            pass
    return None


def run(fd, lock, cid, timeout, script):
    proc = subprocess.Popen(
        ["/bin/sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True, cwd="/",
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        out, _ = proc.communicate()
        rc = 124
    reply = b"R %s %d %s\n" % (cid, rc, base64.b64encode(out))
    with lock:
        view = memoryview(reply)
        while view:
            try:
                view = view[os.write(fd, view):]
            except OSError:
                return


def spawn(fd, lock, cid, script):
    # A background job: started in its own session, reaped by a thread; answers its pid.
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, cwd="/",
        )
        rc, out = 0, str(proc.pid).encode()
        threading.Thread(target=proc.wait, daemon=True).start()
    except OSError as exc:
        rc, out = 127, str(exc).encode()
    reply = b"R %s %d %s\n" % (cid, rc, base64.b64encode(out))
    with lock:
        os.write(fd, reply)


def main():
    port = find_port()
    if port is None:
        console("vmlab: FATAL: no vmlab port")
        time.sleep(5)
        sys.exit(1)
    console("vmlab: agent ready")
    while True:
        # read() gets EOF while the host side is not connected: reopen and retry.
        fd = os.open(port, os.O_RDWR)
        lock = threading.Lock()
        buf = b""
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                parts = line.split()
                if len(parts) != 3:
                    continue
                cid, timeout, b64 = parts
                script = base64.b64decode(b64).decode("utf-8", "replace")
                if float(timeout) < 0:
                    spawn(fd, lock, cid, script)
                    continue
                threading.Thread(
                    target=run, args=(fd, lock, cid, float(timeout), script), daemon=True
                ).start()
        os.close(fd)
        time.sleep(0.2)


main()
"""


def _cpio_entry(out: io.BytesIO, ino: int, name: str, mode: int, data: bytes) -> None:
    nb = name.encode() + b"\0"
    hdr = "070701" + "".join(
        f"{v:08x}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0)
    )
    out.write(hdr.encode() + nb)
    out.write(b"\0" * (-(110 + len(nb)) % 4))
    out.write(data)
    out.write(b"\0" * (-len(data) % 4))


def cpio_newc(entries: Iterable[tuple[str, int, bytes]]) -> bytes:
    """A ``newc`` cpio archive of ``(name, mode, data)``; mode includes the file type bits
    (0o040000 directory, 0o100000 regular file, 0o120000 symlink with the target as data)."""
    out = io.BytesIO()
    ino = 1
    for name, mode, data in entries:
        _cpio_entry(out, ino, name, mode, data)
        ino += 1
    _cpio_entry(out, ino, "TRAILER!!!", 0, b"")
    out.write(b"\0" * (-out.tell() % 512))
    return out.getvalue()


def _busybox() -> Path:
    for cand in ("/bin/busybox", "/usr/bin/busybox"):
        if Path(cand).exists():
            return Path(cand)
    found = shutil.which("busybox")
    if found is None:
        raise RuntimeError("busybox-static is not installed")
    return Path(found)


def build_initramfs(
    kernel: KernelImage | None = None,
    modules: Iterable[str] = GUEST_MODULES,
    cache: Path | None = None,
) -> Path:
    """Build (or reuse from the cache) the initramfs for ``kernel``; return its path."""
    kernel = kernel or ensure_kernel()
    cache = Path(cache or CACHE_DIR)
    busybox = _busybox().read_bytes()
    mods = kernel.resolve(modules)
    key = hashlib.sha256()
    for part in (INIT, AGENT, kernel.version, *[m.name for m in mods]):
        key.update(part.encode() + b"\0")
    key.update(hashlib.sha256(busybox).digest())
    path = cache / f"initramfs-{kernel.version}-{key.hexdigest()[:16]}.cpio.gz"
    if path.exists():
        return path
    entries: list[tuple[str, int, bytes]] = [
        (d, 0o040755, b"")
        for d in ("bin", "sbin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "tmp")
    ]
    entries += [
        ("bin/busybox", 0o100755, busybox),
        ("bin/sh", 0o120777, b"busybox"),
        ("init", 0o100755, INIT.encode()),
        ("agent.py", 0o100644, AGENT.encode()),
        ("modules.order", 0o100644, "".join(f"{m.stem}\n" for m in mods).encode()),
    ]
    entries += [(f"lib/modules/{m.stem}.ko", 0o100644, m.read_bytes()) for m in mods]
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(gzip.compress(cpio_newc(entries), compresslevel=6, mtime=0))
    tmp.rename(path)
    return path
