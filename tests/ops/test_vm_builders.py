"""Pure tests of the VM lab builders: module dependency order, ``.modinfo`` parsing, the newc
cpio writer, the qemu command line and the guest scripts (no qemu, no root)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops.vm.initramfs import AGENT, INIT, READY_MARK, cpio_newc
from ops.vm.kernel import GUEST_MODULES, modinfo, resolve_order
from ops.vm.qemu import QemuSpec, qemu_argv


def _elf_with_modinfo(info: bytes) -> bytes:
    """A minimal ELF64 object: null section, .modinfo, .shstrtab."""
    shstr = b"\0.modinfo\0.shstrtab\0"
    body_off = 64
    modinfo_off = body_off
    shstr_off = modinfo_off + len(info)
    shoff = shstr_off + len(shstr)
    shoff += -shoff % 8
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4] = 2  # ELFCLASS64
    header[5] = 1  # little endian
    struct.pack_into("<Q", header, 0x28, shoff)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 2)
    data = bytearray(header) + info + shstr
    data += b"\0" * (shoff - len(data))

    def sh(name: int, off: int, size: int) -> bytes:
        return struct.pack("<IIQQQQIIQQ", name, 1, 0, 0, off, size, 0, 0, 1, 0)

    data += sh(0, 0, 0) + sh(1, modinfo_off, len(info)) + sh(10, shstr_off, len(shstr))
    return bytes(data)


def test_modinfo_reads_depends_and_vermagic() -> None:
    elf = _elf_with_modinfo(b"license=GPL\0depends=slhc,ppp_generic\0vermagic=6.1.0 SMP\0")
    info = modinfo(elf)
    assert info["depends"] == ["slhc,ppp_generic"]
    assert info["vermagic"] == ["6.1.0 SMP"]


def test_modinfo_rejects_non_elf() -> None:
    with pytest.raises(ValueError):
        modinfo(b"MZ" + bytes(100))


def test_resolve_order_puts_dependencies_first_and_drops_builtins() -> None:
    deps = {
        "l2tp_ppp": ["l2tp_core", "l2tp_netlink", "pppox", "ppp_generic"],
        "l2tp_netlink": ["l2tp_core"],
        "l2tp_core": ["udp_tunnel", "ip6_udp_tunnel"],
        "udp_tunnel": [],
        "ip6_udp_tunnel": [],
        "pppox": ["ppp_generic"],
        "ppp_generic": ["slhc"],
        "slhc": [],
    }
    order = resolve_order(["l2tp_ppp", "af-packet"], deps)  # af_packet is built in: dropped
    assert order[-1] == "l2tp_ppp"
    assert set(order) == set(deps)
    for mod, ds in deps.items():
        assert all(order.index(d) < order.index(mod) for d in ds)


def test_resolve_order_detects_cycles() -> None:
    with pytest.raises(ValueError, match="cycle"):
        resolve_order(["a"], {"a": ["b"], "b": ["a"]})


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    n = draw(st.integers(1, 12))
    names = [f"m{i}" for i in range(n)]
    return {
        names[i]: draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else []
        for i in range(n)
    }


@settings(max_examples=60, deadline=None)
@given(dags(), st.data())
def test_resolve_order_property(deps: dict[str, list[str]], data: st.DataObject) -> None:
    wanted = data.draw(st.lists(st.sampled_from(sorted(deps)), min_size=1))
    order = resolve_order(wanted, deps)
    assert len(order) == len(set(order))
    assert set(wanted) <= set(order)
    for mod in order:
        assert all(d in order and order.index(d) < order.index(mod) for d in deps[mod])


def _parse_newc(blob: bytes) -> list[tuple[str, int, bytes]]:
    out: list[tuple[str, int, bytes]] = []
    pos = 0
    while True:
        assert blob[pos : pos + 6] == b"070701"
        fields = [int(blob[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = pos + 110
        name = blob[name_start : name_start + namesize - 1].decode()
        pos = name_start + namesize
        pos += -pos % 4
        data = blob[pos : pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            assert len(blob) % 512 == 0
            return out
        out.append((name, mode, data))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text("abcdefgh/._-", min_size=1, max_size=30),
            st.sampled_from([0o100644, 0o100755, 0o040755, 0o120777]),
            st.binary(max_size=300),
        ),
        max_size=8,
    )
)
def test_cpio_newc_round_trip(entries: list[tuple[str, int, bytes]]) -> None:
    assert _parse_newc(cpio_newc(entries)) == entries


def test_qemu_argv_is_tcg_with_taps_virtfs_and_agent(tmp_path: Path) -> None:
    spec = QemuSpec(
        name="g1", kernel=tmp_path / "vmlinuz", initrd=tmp_path / "initrd",
        console_log=tmp_path / "console.log", agent_socket=tmp_path / "agent.sock",
        share=tmp_path, nics=[("tap-a", "52:54:00:00:00:01"), ("tap-b", "52:54:00:00:00:02")],
        memory_mb=640,
    )  # fmt: skip
    argv = qemu_argv(spec)
    joined = " ".join(argv)
    assert argv[0] == "qemu-system-x86_64"
    assert "-enable-kvm" not in argv and "kvm" not in argv[argv.index("-accel") + 1]
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert "-nographic" in argv and argv[argv.index("-m") + 1] == "640"
    assert "tap,id=n0,ifname=tap-a,script=no,downscript=no" in argv
    assert "virtio-net-pci,netdev=n1,mac=52:54:00:00:00:02,romfile=" in argv
    assert "path=/,mount_tag=hostroot,security_model=none,readonly=on" in joined
    assert f"path={tmp_path},mount_tag=share" in joined
    assert f"socket,id=agent0,path={tmp_path / 'agent.sock'},server=on,wait=off" in argv
    append = argv[argv.index("-append") + 1]
    assert "console=ttyS0" in append and f"vmlab.share={tmp_path}" in append


def test_guest_scripts_mount_the_host_root_and_announce_readiness() -> None:
    assert "hostroot /host" in INIT and "share" in INIT
    assert "lowerdir=/host" in INIT and "exec /bin/busybox init" in INIT
    assert READY_MARK in AGENT
    assert "b64encode" in AGENT and "killpg" in AGENT
    compile(AGENT, "agent.py", "exec")


def test_guest_modules_cover_ppp_pppoe_l2tp_and_9p() -> None:
    for mod in ("ppp_generic", "pppoe", "pppox", "l2tp_ppp", "l2tp_netlink", "9p",
                "9pnet_virtio", "virtio_net", "virtio_console", "overlay"):  # fmt: skip
        assert mod in GUEST_MODULES


def test_initramfs_gzip_of_cpio_is_readable() -> None:
    blob = gzip.compress(cpio_newc([("init", 0o100755, b"#!/bin/sh\n")]), mtime=0)
    assert _parse_newc(gzip.decompress(blob)) == [("init", 0o100755, b"#!/bin/sh\n")]


def test_a_project_tree_under_tmp_stays_visible_in_the_guest() -> None:
    from ops.vm.qemu import kept_paths

    assert kept_paths(Path("/tmp/ci3")) == ["/tmp/ci3"]
    assert kept_paths(Path("/run/x/y")) == ["/run/x/y"]
    assert kept_paths(Path("/work/main")) == []
    assert kept_paths(Path("/tmpfoo/main")) == []
    from ops.vm.initramfs import INIT

    assert 'vmlab.keep=*) KEEP="$KEEP ${a#vmlab.keep=}"' in INIT
    assert 'mount -o bind "/host$P" "$R$P"' in INIT
