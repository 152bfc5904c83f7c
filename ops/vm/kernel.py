"""The guest kernel: Debian's ``linux-image-*-amd64`` package, fetched with apt and cached.

``apt-get download linux-image-amd64`` only fetches the meta package, so the real flavour
package (``linux-image-6.1.0-NN-amd64``, NOT the ``-cloud`` flavour, which lacks the ppp and
l2tp modules) is resolved from its dependencies and downloaded into the cache directory
(default ``/var/cache/l2tp-broker-vm``), then extracted there once. The package ships no
``modules.dep`` (depmod runs at install time), so module dependencies are read from each
module's ELF ``.modinfo`` section (``depends=``), cached in ``vmlab-deps.json`` next to the
modules, and resolved here, in load order.

    k = ensure_kernel()                      # KernelImage(version, vmlinuz, modules_dir)
    paths = k.resolve(GUEST_MODULES)         # dependencies first
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CACHE_DIR",
    "GUEST_MODULES",
    "KernelImage",
    "ensure_kernel",
    "modinfo",
    "resolve_order",
]

CACHE_DIR = Path(os.environ.get("L2TP_BROKER_VM_CACHE", "/var/cache/l2tp-broker-vm"))

#: Modules the guests load at boot (dependencies are added automatically).
GUEST_MODULES: tuple[str, ...] = (
    "virtio_pci",
    "virtio_net",
    "virtio_console",
    "9pnet_virtio",
    "9p",
    "overlay",
    "af_packet",
    "ppp_generic",
    "pppox",
    "pppoe",
    "l2tp_core",
    "l2tp_netlink",
    "l2tp_ppp",
    "bridge",
    "veth",
    "macvlan",
    "tun",
)


def modinfo(data: bytes) -> dict[str, list[str]]:
    """The ``key=value`` strings of an ELF64 kernel module's ``.modinfo`` section."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError("not an ELF64 object")
    e_shoff = struct.unpack_from("<Q", data, 0x28)[0]
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, off, size = struct.unpack_from(
            "<IIQQQQ", data, e_shoff + i * e_shentsize
        )
        return name, off, size

    _, str_off, str_size = section(e_shstrndx)
    names = data[str_off : str_off + str_size]
    for i in range(e_shnum):
        name_off, off, size = section(i)
        end = names.index(b"\0", name_off)
        if names[name_off:end] == b".modinfo":
            info: dict[str, list[str]] = {}
            for item in data[off : off + size].split(b"\0"):
                key, sep, value = item.decode(errors="replace").partition("=")
                if sep:
                    info.setdefault(key, []).append(value)
            return info
    return {}


def _canonical(name: str) -> str:
    return name.replace("-", "_")


def resolve_order(wanted: Iterable[str], depends: Mapping[str, Sequence[str]]) -> list[str]:
    """Module names in load order (every module after its dependencies); names missing from
    ``depends`` (built into the kernel) are dropped."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, stack: tuple[str, ...]) -> None:
        name = _canonical(name)
        if name in seen or name not in depends:
            return
        if name in stack:
            raise ValueError(f"module dependency cycle: {' -> '.join((*stack, name))}")
        for dep in depends[name]:
            visit(dep, (*stack, name))
        seen.add(name)
        order.append(name)

    for w in wanted:
        visit(w, ())
    return order


@dataclass(slots=True)
class KernelImage:
    """An extracted kernel package: ``vmlinuz`` and ``lib/modules/<version>``."""

    version: str
    vmlinuz: Path
    modules_dir: Path
    _index: dict[str, Path] = field(default_factory=dict)
    _deps: dict[str, list[str]] = field(default_factory=dict)

    def index(self) -> dict[str, Path]:
        """Module name -> .ko path (names with ``_``, as the kernel reports them)."""
        if not self._index:
            for path in sorted(self.modules_dir.rglob("*.ko")):
                self._index[_canonical(path.stem)] = path
        return self._index

    def depends(self) -> dict[str, list[str]]:
        """Module name -> direct dependencies, from modules.dep when present, else .modinfo."""
        if self._deps:
            return self._deps
        dep_file = self.modules_dir / "modules.dep"
        if dep_file.exists():
            for line in dep_file.read_text().splitlines():
                mod, _, deps = line.partition(":")
                self._deps[_canonical(Path(mod).stem)] = [
                    _canonical(Path(d).stem) for d in deps.split()
                ]
        else:
            cache = self.modules_dir / "vmlab-deps.json"
            try:
                self._deps = json.loads(cache.read_text())
            except (OSError, ValueError):
                for name, path in self.index().items():
                    info = modinfo(path.read_bytes())
                    names = ",".join(info.get("depends", [])).split(",")
                    self._deps[name] = [_canonical(d) for d in names if d]
                tmp = cache.with_suffix(f".tmp{os.getpid()}")
                with contextlib.suppress(OSError):
                    tmp.write_text(json.dumps(self._deps, sort_keys=True))
                    tmp.rename(cache)
        return self._deps

    def resolve(self, wanted: Iterable[str]) -> list[Path]:
        """The .ko files for ``wanted`` and their dependencies, in load order."""
        idx = self.index()
        return [idx[name] for name in resolve_order(wanted, self.depends())]

    def module_path(self, name: str) -> Path:
        return self.index()[_canonical(name)]

    def config(self) -> str:
        cfg = self.vmlinuz.parent / f"config-{self.version}"
        return cfg.read_text() if cfg.exists() else ""


def _flavour_package() -> str:
    """``linux-image-amd64`` resolved to its real (non-cloud) flavour package name."""
    out = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True, check=True
    ).stdout
    for m in re.finditer(r"Depends:\s*(linux-image-[0-9][\w.+-]*-amd64)\b", out):
        if "cloud" not in m.group(1):
            return m.group(1)
    raise RuntimeError(f"cannot resolve linux-image-amd64 to a kernel package: {out!r}")


def _extracted(cache: Path) -> KernelImage | None:
    root = cache / "root"
    for vmlinuz in sorted((root / "boot").glob("vmlinuz-*-amd64")):
        version = vmlinuz.name.removeprefix("vmlinuz-")
        if "cloud" in version:
            continue
        mods = root / "lib" / "modules" / version
        if mods.is_dir() and (root / ".complete").exists():
            return KernelImage(version, vmlinuz, mods)
    return None


def ensure_kernel(cache: Path | None = None) -> KernelImage:
    """Download (once) and extract (once) the Debian kernel; return it."""
    cache = Path(cache or CACHE_DIR)
    found = _extracted(cache)
    if found is not None:
        return found
    cache.mkdir(parents=True, exist_ok=True)
    debs = sorted(p for p in cache.glob("linux-image-*-amd64_*.deb") if "cloud" not in p.name)
    if not debs:
        pkg = _flavour_package()
        proc = subprocess.run(
            ["apt-get", "download", pkg], cwd=cache, capture_output=True, text=True
        )
        debs = sorted(cache.glob(f"{pkg}_*.deb"))
        if not debs:
            raise RuntimeError(f"apt-get download {pkg} failed: {proc.stderr.strip()}")
    root = cache / "root"
    tmp = cache / f"root.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(tmp)], check=True)
    (tmp / ".complete").write_text(debs[-1].name + "\n")
    try:
        tmp.rename(root)  # atomic; a concurrent extractor may have won the race
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    found = _extracted(cache)
    if found is None:
        raise RuntimeError(f"{debs[-1].name} holds no amd64 kernel")
    return found
