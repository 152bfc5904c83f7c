"""Demo lab entry point (issue 6 builds the lab; until then this says what it will run)."""

from __future__ import annotations


def main() -> int:
    print(
        "l2tp-broker demo: not built yet. It will create network namespaces with 50 simulated\n"
        "PPPoE subscribers in two realms, FreeRADIUS, two l2tpns LNSs and the broker on its\n"
        "embedded defaults, pass traffic, kill one LNS and show calls failing over."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
