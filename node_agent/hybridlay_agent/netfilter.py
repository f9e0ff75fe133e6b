"""ipsets and iptables chains through ``ipset save/restore`` and ``iptables-save/-restore --noflush``.

Only sets and chains named ``HYBRIDLAY-*`` and the jump rules into them are read or written;
everything else in the tables is left as it is (``--noflush`` keeps it).
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field

from hybridlay.dataplane.state import CHAIN_PREFIX, SET_PREFIX, Chain, IPSet

IPSET_FAMILY = {"inet": 4, "inet6": 6}
SAVE = {4: "iptables-save", 6: "ip6tables-save"}
RESTORE = {4: "iptables-restore", 6: "ip6tables-restore"}
TABLES = ("nat", "filter", "mangle")


class NetfilterError(Exception):
    pass


def _run(args: list[str], stdin: str | None = None) -> str:
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NetfilterError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def _member(value: str, kind: str) -> str:
    """ipset prints a host-length hash:net member without its prefix; compare canonical CIDRs."""
    return str(ipaddress.ip_network(value, strict=False)) if kind == "hash:net" else str(ipaddress.ip_address(value))


def read_ipsets() -> set[IPSet]:
    kinds: dict[str, tuple[str, int]] = {}
    members: dict[str, set[str]] = defaultdict(set)
    for line in _run(["ipset", "save"]).splitlines():
        words = line.split()
        if len(words) < 3 or not words[1].startswith(SET_PREFIX):
            continue
        if words[0] == "create":
            family = words[words.index("family") + 1] if "family" in words else "inet"
            kinds[words[1]] = (words[2], IPSET_FAMILY.get(family, 4))
        elif words[0] == "add" and words[1] in kinds:
            members[words[1]].add(_member(words[2], kinds[words[1]][0]))
    return {IPSet(name, family, kind, frozenset(members[name])) for name, (kind, family) in kinds.items()}


def ipset_restore_script(current: set[IPSet], desired: set[IPSet]) -> tuple[str, list[str]]:
    """Lines creating/updating sets (run before iptables), and the names to destroy afterwards."""
    have = {s.name: s for s in current}
    lines, destroy = [], []
    for want in sorted(desired, key=lambda s: s.name):
        old = have.get(want.name)
        if old is not None and (old.type, old.family) != (want.type, want.family):
            # A set's type cannot change: fill a fresh set and swap it in.
            tmp = want.name[:27] + "-TMP"
            lines.append(f"create {tmp} {want.type} family {'inet' if want.family == 4 else 'inet6'} -exist")
            lines += [f"add {tmp} {m} -exist" for m in sorted(want.members)]
            lines += [f"swap {tmp} {want.name}", f"destroy {tmp}"]
            continue
        if old is None:
            lines.append(f"create {want.name} {want.type} family {'inet' if want.family == 4 else 'inet6'} -exist")
        present = old.members if old else frozenset()
        lines += [f"add {want.name} {m} -exist" for m in sorted(want.members - present)]
        lines += [f"del {want.name} {m} -exist" for m in sorted(present - want.members)]
    wanted = {s.name for s in desired}
    destroy = sorted(name for name in have if name not in wanted)
    return "".join(line + "\n" for line in lines), destroy


def restore_ipsets(script: str) -> None:
    _run(["ipset", "restore"], stdin=script)


def destroy_ipset(name: str) -> None:
    _run(["ipset", "destroy", name])


@dataclass
class TableState:
    """Our chains in one iptables table, and the built-in chains that jump to them."""

    chains: dict[str, list[str]] = field(default_factory=dict)
    jumps: set[tuple[str, str]] = field(default_factory=set)  # (hook, chain)


def read_chains(family: int) -> dict[str, TableState]:
    state: dict[str, TableState] = {t: TableState() for t in TABLES}
    table = ""
    for line in _run([SAVE[family]]).splitlines():
        if line.startswith("*"):
            table = line[1:]
        if table not in state:
            continue
        if line.startswith(":" + CHAIN_PREFIX):
            state[table].chains.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            chain, _, rule = line[3:].partition(" ")
            if chain.startswith(CHAIN_PREFIX):
                state[table].chains.setdefault(chain, []).append(rule)
            elif rule.startswith("-j " + CHAIN_PREFIX) and len(rule.split()) == 2:
                state[table].jumps.add((chain, rule.split()[1]))
    return state


def iptables_restore_script(current: dict[str, TableState], desired: list[Chain]) -> str:
    """An ``iptables-restore --noflush`` input changing only what differs (empty when nothing does)."""
    out = []
    for table in TABLES:
        have = current.get(table, TableState())
        want = {c.name: c for c in desired if c.table == table}
        lines = []
        for chain in sorted(want.values(), key=lambda c: c.name):
            if have.chains.get(chain.name) != list(chain.rules):
                # Declaring a chain under --noflush empties it; then its rules are written anew.
                lines.append(f":{chain.name} - [0:0]")
                lines += [f"-A {chain.name} {rule}" for rule in chain.rules]
            if (chain.hook, chain.name) not in have.jumps:
                lines.append(f"-I {chain.hook} 1 -j {chain.name}")
        for hook, name in sorted(have.jumps):
            if name not in want or want[name].hook != hook:
                lines.append(f"-D {hook} -j {name}")
        for name in sorted(have.chains):
            if name not in want:
                lines += [f":{name} - [0:0]", f"-X {name}"]
        if lines:
            out += [f"*{table}", *lines, "COMMIT"]
    return "".join(line + "\n" for line in out)


def restore_chains(family: int, script: str) -> None:
    _run([RESTORE[family], "--noflush"], stdin=script)
