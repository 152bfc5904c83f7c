"""The qemu-system-x86_64 command line for a lab guest (pure: builds argv, runs nothing).

Software emulation only (TCG: ``-enable-kvm`` hangs on this machine), no display, serial
console to a file, the command agent on a virtio-serial port backed by a unix socket, the host
root read-only and a per-guest share read-write over 9p (virtfs), and one virtio-net NIC per
tap device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["QemuSpec", "qemu_argv"]


@dataclass(frozen=True, slots=True)
class QemuSpec:
    name: str
    kernel: Path
    initrd: Path
    console_log: Path
    agent_socket: Path
    share: Path
    #: (tap interface name, MAC) per NIC, in guest order (eth0, eth1, ...).
    nics: Sequence[tuple[str, str]] = ()
    memory_mb: int = 512
    cpus: int = 1
    append: Sequence[str] = field(default_factory=tuple)
    binary: str = "qemu-system-x86_64"


#: The project tree (the guest runs its code and venv from the host root).
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def kept_paths(root: Path = PROJECT_ROOT) -> list[str]:
    """Host paths the guest must still see under its fresh /tmp and /run tmpfs: the project
    tree when it lives there (a clean CI clone in /tmp, for example)."""
    if any(root == Path(top) or Path(top) in root.parents for top in ("/tmp", "/run")):
        return [str(root)]
    return []


def qemu_argv(spec: QemuSpec) -> list[str]:
    cmdline = [
        "console=ttyS0",
        "panic=-1",
        "quiet",
        "loglevel=4",
        "net.ifnames=0",
        "tsc=reliable",
        f"vmlab.name={spec.name}",
        f"vmlab.share={spec.share}",
        *(f"vmlab.keep={p}" for p in kept_paths()),
        *spec.append,
    ]
    argv = [
        spec.binary,
        "-name", spec.name,
        "-machine", "q35",
        "-accel", "tcg",
        "-cpu", "max",
        "-smp", str(spec.cpus),
        "-m", str(spec.memory_mb),
        "-nographic", "-nodefaults", "-no-reboot", "-no-user-config",
        "-monitor", "none",
        "-kernel", str(spec.kernel),
        "-initrd", str(spec.initrd),
        "-append", " ".join(cmdline),
        "-chardev", f"file,id=con0,path={spec.console_log}",
        "-serial", "chardev:con0",
        "-chardev", f"socket,id=agent0,path={spec.agent_socket},server=on,wait=off",
        "-device", "virtio-serial-pci,id=vser0",
        "-device", "virtserialport,bus=vser0.0,chardev=agent0,name=vmlab",
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
                   "multidevs=remap,id=fs0",
        "-virtfs", f"local,path={spec.share},mount_tag=share,security_model=none,"
                   "multidevs=remap,id=fs1",
    ]  # fmt: skip
    for i, (tap, mac) in enumerate(spec.nics):
        argv += [
            "-netdev", f"tap,id=n{i},ifname={tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n{i},mac={mac},romfile=",
        ]  # fmt: skip
    return argv
