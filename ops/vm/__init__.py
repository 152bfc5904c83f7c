"""VM lab: qemu (TCG) guests running the Debian 6.1 kernel with the host's root over 9p.

The host kernel has no PPP/L2TP; the guests do (ppp_generic, pppoe, l2tp_ppp, ...), and they run
the host's own binaries (pppd + pppoe plugin, xl2tpd, iperf3, python3, /work/main/.venv)
because their root file system is an overlay of the host root (9p, read-only) with a tmpfs on
top: anything may be written in the guest, nothing reaches the host except through the share.

Stable API (used by the tests and by other helpers)::

    from ops.lab.netns import Netns, bridge
    from ops.vm import Guest, CompletedCommand, GuestError, GuestProcess

    with Netns("lab") as ns:
        br = bridge(ns, [], "192.0.2.1/24")          # a bridge in the lab namespace
        with Guest("sub", ns, nics=[(br, None)], memory=512) as g:   # boots (timeout 180 s)
            g.run("ip addr add 192.0.2.2/24 dev eth0 && ip link set eth0 up").check()
            r = g.run("ping -c1 -W5 192.0.2.1", timeout=30)   # CompletedCommand(cmd, rc, out)
            p = g.popen_bg("pppd nodetach ...")    # GuestProcess(pid, log: host-visible Path)
            p.alive(); p.kill("TERM"); p.output()
            g.write("cfg/x.conf", "...")           # file in g.share, same path in the guest
            g.log()                                # serial console text so far

- ``Guest(name, ns, nics=[(bridge, mac|None), ...], *, memory=512, cpus=1, workdir=None,
  kernel=None, append=(), nice=10, keep_workdir=False)``: ``ns`` is a Netns, a namespace name
  or None (host namespace, only without NICs). NIC i is ``eth{i}`` in the guest, tap device
  created in ``ns`` and enslaved to ``bridge``; ``guest.taps`` lists the tap names.
- ``boot(timeout=180) -> Guest``: raises :class:`GuestError` (console tail in the message)
  after tearing down on any failure. ``boot_seconds`` is set after a successful boot.
- ``run(cmd, timeout=60, *, check=False) -> CompletedCommand``: ``sh -c cmd`` in the guest
  (stdout+stderr merged, killed after ``timeout``); ``CompletedCommand.check()`` raises on
  rc != 0; ``.ok``.
- ``popen_bg(cmd, log=None) -> GuestProcess``; ``wait_for(cmd, timeout)`` polls until rc 0.
  Guest paths outside the share are the host's files (read-only lower layer, writable overlay
  in the guest): /work/main, /work/main/.venv, /usr/sbin/pppd, xl2tpd ... run as they are;
  /tmp and /run are fresh tmpfs in the guest (use the share or /var/tmp to pass files).
- ``share``/``workdir``: host directory mounted read-write at the same path in the guest.
- ``shutdown()``: powers off (qemu killed if it lingers), deletes taps and the workdir unless
  it was passed in or ``keep_workdir``; idempotent; the context manager calls it.

Building blocks: :mod:`ops.vm.kernel` (apt download + extract + module dependencies, cached in
``/var/cache/l2tp-broker-vm``), :mod:`ops.vm.initramfs` (busybox /init + agent),
:mod:`ops.vm.qemu` (argv), :mod:`ops.vm.lab` (``python -m ops.vm.lab --help``: boot by hand).

Guest facts: Debian 6.1.0 kernel; /dev/ppp present; PPPIOCBRIDGECHAN (since 5.11) known to
ppp_generic (probe: a PPPoE channel attached on /dev/ppp, PPPIOCBRIDGECHAN to a missing channel
-> ENXIO, not ENOTTY); modules loaded at boot: :data:`ops.vm.kernel.GUEST_MODULES` (ppp,
pppoe, l2tp, 9p, overlay, bridge, veth, macvlan, tun, virtio). A TCG boot to a ready agent
costs ~10 s of qemu CPU (20-40 s wall on the loaded shared host); a guest command round trip
~60 ms of qemu CPU (~100 ms wall). ``cpu_seconds()`` / ``boot_cpu_seconds`` give qemu's CPU.
The agent runs commands concurrently in the guest, but ``run`` holds a lock per guest, so
calls from several host threads are serialised.
"""

from __future__ import annotations

from ops.vm.guest import CompletedCommand, Guest, GuestError, GuestProcess, random_mac

__all__ = ["CompletedCommand", "Guest", "GuestError", "GuestProcess", "random_mac"]
