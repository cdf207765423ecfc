"""Random fault schedules from a seed against a real cluster, then the checker.

    python -m tests.chaos.run --seed 7 --duration 300 [--brokers 5]

A seed fixes the schedule (which faults, on which brokers, for how long, and the
workload's choices); the processes' timing is real, so a replay repeats the schedule, not
the exact interleaving. The last line sums up the run; the exit status is 1 on any
violation."""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from odradek.client import SyncAdmin, SyncProducer
from tests.brokers import wait_until
from tests.chaos.checker import TP, History, Violation, check_metadata
from tests.chaos.cluster import TOPIC_CONFIGS, ChaosBroker, ChaosCluster
from tests.chaos.net import unavailable
from tests.chaos.workload import PARTITIONS, TOPIC, Workload

Undo = Callable[[], None]
# Faults that break the broker today (bugs found here, not fixed yet; each should have an xfail
# regression test in test_chaos.py); --known-bugs include puts them in the schedule.
KNOWN_BUGS: dict[str, str] = {}
SETTLE_TIMEOUT_S = 120.0


@dataclass
class Report:
    seed: int
    duration: float
    brokers: int
    faults: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    known_bugs: bool = False

    @property
    def replay(self) -> str:
        return (f"python -m tests.chaos.run --seed {self.seed} --duration {self.duration:g} "
                f"--brokers {self.brokers}" + (" --known-bugs include" if self.known_bugs else ""))

    def summary(self) -> str:
        faults = sum(self.faults.values())
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        return (f"chaos seed {self.seed}: {self.duration / 60:.1f} min, {self.brokers} brokers, "
                f"{faults} faults ({kinds}), {self.counts.get('acked', 0)} acknowledged "
                f"writes, {self.counts.get('reads', 0)} reads, {len(self.violations)} "
                f"violations; replay: {self.replay}")


class Schedule:
    """Draws faults from one seeded Random and undoes them later."""

    def __init__(self, cluster: ChaosCluster, rng: random.Random, report: Report,
                 log: Callable[[str], None], known_bugs: bool = False) -> None:
        self.cluster = cluster
        self.rng = rng
        self.report = report
        self.log = log
        self.kinds: dict[str, Callable[[], Undo]] = {
            "partition": self.partition, "cut-one-way": self.cut_one_way,
            "isolate-from-clients": self.isolate, "loss": self.loss, "slow-link": self.slow,
            "queue-delay": self.queue, "delay": self.delay, "reorder": self.reorder,
            "pause": self.pause, "kill-9": self.kill, "restart": self.restart,
            "disk-full": self.disk_full, "fsync-fail": self.fsync_fail,
            "fsync-stall": self.fsync_stall, "bit-flip": self.bit_flip,
            "meta-bit-flip": self.meta_bit_flip,
        }
        missing = dict(cluster.net.missing)
        if not known_bugs:
            missing.update(KNOWN_BUGS)
        for kind, reason in missing.items():
            self.kinds.pop(kind, None)
            report.skipped[kind] = reason
        # A broker with a process fault on it takes no other one.
        self.busy: set[int] = set()
        # The one voter whose metadata log rots: a minority, whatever the timing (two
        # voters repairing at once could elect no controller: neither votes till repaired).
        voters = min(3, len(cluster.brokers))
        self.meta_victim = self.rng.randrange(voters)

    def pick(self) -> int:
        free = [b.index for b in self.cluster.brokers if b.index not in self.busy]
        return self.rng.choice(free) if free else self.rng.randrange(len(self.cluster.brokers))

    def _broker(self) -> ChaosBroker:
        i = self.pick()
        self.busy.add(i)
        return self.cluster.brokers[i]

    def inject(self) -> Undo:
        kind = self.rng.choice(sorted(self.kinds))
        self.report.faults[kind] = self.report.faults.get(kind, 0) + 1
        return self.kinds[kind]()

    # ------------------------------------------------------------ network
    def partition(self) -> Undo:
        n = len(self.cluster.brokers)
        side = set(self.rng.sample(range(n), self.rng.randrange(1, (n - 1) // 2 + 1)))
        self.log(f"fault: partition {sorted(side)} | {sorted(set(range(n)) - side)}")
        for a in side:
            for b in set(range(n)) - side:
                self.cluster.net.cut(a, b)
                self.cluster.net.cut(b, a)
        return self.cluster.net.heal

    def cut_one_way(self) -> Undo:
        a, b = self.rng.sample(range(len(self.cluster.brokers)), 2)
        self.log(f"fault: cut {a} -> {b} (one way)")
        self.cluster.net.cut(a, b)
        return self.cluster.net.heal

    def isolate(self) -> Undo:
        i = self.pick()
        self.log(f"fault: broker {i} cut from the clients")
        self.cluster.isolate_from_clients(i)
        return self.cluster.net.heal

    def loss(self) -> Undo:
        i, percent = self.pick(), self.rng.choice((5, 10, 30))
        hooks = self.rng.choice((("input",), ("output",), ("input", "output")))
        what = {"input": "receives", "output": "sends"}
        self.log(f"fault: broker {i} loses {percent}% of what it "
                 f"{' and '.join(what[h] for h in hooks)}")
        self.cluster.net.loss(i, percent, hooks)
        return self.cluster.net.heal

    def slow(self) -> Undo:
        i, kbit = self.pick(), self.rng.choice((512, 2048, 8192))
        self.log(f"fault: broker {i} sends at {kbit} kbit/s")
        self.cluster.net.slow(i, kbit)
        return self.cluster.net.heal

    def queue(self) -> Undo:
        i, kbit, ms = self.pick(), self.rng.choice((1024, 4096)), self.rng.choice((50, 500))
        self.log(f"fault: broker {i} sends at {kbit} kbit/s through a {ms} ms queue")
        self.cluster.net.queue(i, kbit, ms)
        return self.cluster.net.heal

    def delay(self) -> Undo:
        i, ms = self.pick(), self.rng.choice((20, 100, 400))
        self.log(f"fault: broker {i} sends {ms} ms late")
        self.cluster.net.delay(i, ms, ms // 2, seed=self.rng.randrange(1 << 30))
        return self.cluster.net.heal

    def reorder(self) -> Undo:
        i = self.pick()
        self.log(f"fault: broker {i} reorders 25% of what it sends")
        self.cluster.net.delay(i, 50, 10, reorder=25)
        return self.cluster.net.heal

    # ------------------------------------------------------------ processes
    def _release(self, broker: ChaosBroker, undo: Undo) -> Undo:
        def release() -> None:
            undo()
            self.busy.discard(broker.index)
        return release

    def pause(self) -> Undo:
        broker = self._broker()
        self.log(f"fault: SIGSTOP broker {broker.index}")
        broker.pause()
        return self._release(broker, broker.resume)

    def kill(self) -> Undo:
        broker = self._broker()
        self.log(f"fault: kill -9 broker {broker.index}")
        broker.kill9()
        return self._release(broker, lambda: self._restart_if_dead(broker))

    def restart(self) -> Undo:
        broker = self._broker()
        self.log(f"fault: clean restart of broker {broker.index}")
        self.cluster.restart(broker, clean=True)
        return self._release(broker, lambda: None)

    def _restart_if_dead(self, broker: ChaosBroker) -> None:
        if not broker.alive:
            self.log(f"broker {broker.index} started again")
            broker.start(wait=False)

    def disk_full(self) -> Undo:
        broker = self._broker()
        self.log(f"fault: broker {broker.index}'s disk full")
        broker.fill_disk()

        def undo() -> None:
            broker.free_disk()
            self._restart_if_dead(broker)
        return self._release(broker, undo)

    def _fsync(self, mode: str) -> Undo:
        broker = self._broker()
        self.log(f"fault: broker {broker.index}'s fsyncs: {mode}")
        broker.fsync_mode(mode)

        def undo() -> None:
            broker.fsync_mode("ok")
            self._restart_if_dead(broker)
        return self._release(broker, undo)

    def fsync_fail(self) -> Undo:
        return self._fsync("fail")

    def fsync_stall(self) -> Undo:
        return self._fsync(f"stall {self.rng.choice((200, 1000, 3000))}")

    def _stopped(self, broker: ChaosBroker) -> str:
        """Stops broker cleanly (a start then trusts its sealed segments: the flip is
        found by a read or the scrub) or with kill -9 (recovery scans what lies past the
        recovery point)."""
        if self.rng.random() < 0.5:
            broker.stop()
            return "stopped cleanly"
        broker.kill9()
        return "killed"

    def bit_flip(self) -> Undo:
        broker = self._broker()
        how = self._stopped(broker)
        where = broker.flip_bit(TOPIC, self.rng)
        self.log(f"fault: broker {broker.index} {how}, bit flipped in {where}, restarted")
        broker.start(wait=False)
        return self._release(broker, lambda: None)

    def meta_bit_flip(self) -> Undo:
        broker = self.cluster.brokers[self.meta_victim]
        if broker.index in self.busy:
            # Its other fault first (busy follows from the seed, not from the timing).
            self.report.faults["meta-bit-flip"] -= 1
            self.report.faults["bit-flip"] = self.report.faults.get("bit-flip", 0) + 1
            return self.bit_flip()
        self.busy.add(broker.index)
        how = self._stopped(broker)
        where = broker.flip_meta_bit(self.rng)
        self.log(f"fault: voter {broker.index} {how}, bit flipped in {where}, restarted")
        broker.start(wait=False)
        return self._release(broker, lambda: None)


def settle(cluster: ChaosCluster, workload: Workload, log: Callable[[str], None]) -> None:
    """After the heal: every partition takes a write again, the tailing consumers reach
    the end, and every replica is in sync with no move under way."""
    with SyncProducer(cluster.bootstrap, request_timeout_ms=5_000,
                      delivery_timeout_ms=int(SETTLE_TIMEOUT_S * 1000)) as producer:
        for p in range(PARTITIONS):
            producer.send(TOPIC, b"final:%d" % p, partition=p).result(SETTLE_TIMEOUT_S)
    log("settle: every partition took a write")
    with SyncAdmin(cluster.bootstrap, request_timeout_ms=5_000) as admin:
        ends = {(TOPIC, p): int(admin.list_offsets(TOPIC, p, "latest").offset)
                for p in range(PARTITIONS)}
        wait_until(lambda: workload.caught_up(ends), SETTLE_TIMEOUT_S,
                   f"the tailing consumers to reach {ends}", interval=0.2)
        log("settle: the tailing consumers caught up")

        last: list[str] = []

        def converged() -> bool:
            try:
                described = admin.describe_topic(TOPIC)
            except Exception:  # noqa: BLE001 - any failure: not yet
                return False
            last[:] = [f"{p.info.partition}: leader {p.info.leader} replicas "
                       f"{list(p.info.replicas)} in sync {list(p.info.in_sync_replicas)} "
                       f"target {list(p.info.target_replicas)}" for p in described.partitions]
            return all(not p.info.target_replicas and sorted(p.info.in_sync_replicas) ==
                       sorted(p.info.replicas) and p.info.leader >= 0
                       for p in described.partitions)
        try:
            wait_until(converged, SETTLE_TIMEOUT_S, "every replica in sync", interval=0.2)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last seen: {'; '.join(last)}") from None
    log("settle: every replica in sync")


def final_logs(cluster: ChaosCluster) -> dict[TP, dict[int, tuple[list[tuple[int, bytes]],
                                                                   str | None]]]:
    """Each partition's replicas' records from their files, the leader's first; the
    brokers are stopped cleanly first so that nothing moves while the files are read."""
    with SyncAdmin(cluster.bootstrap, request_timeout_ms=5_000) as admin:
        described = admin.describe_topic(TOPIC)
    placement = {p.info.partition: [p.info.leader] + [r for r in p.info.replicas
                                                      if r != p.info.leader]
                 for p in described.partitions}

    def same_files() -> bool:
        stored = {b.index: b.stored(TOPIC) for b in cluster.brokers}
        return all(len({tuple(stored[r].get(p, ([], None))[0]) for r in rs}) == 1
                   for p, rs in placement.items())
    # "In sync" lets a new leader count followers it hears from for a while before they
    # answer, so the files are what says the replicas converged; if they never do, the
    # checker reports how they differ.
    try:
        wait_until(same_files, SETTLE_TIMEOUT_S, "every replica's files equal", interval=0.5)
    except TimeoutError as exc:
        print(f"chaos: {exc}")
    for broker in cluster.brokers:
        broker.stop()
    stored = {b.index: b.stored(TOPIC) for b in cluster.brokers}
    logs: dict[TP, dict[int, tuple[list[tuple[int, bytes]], str | None]]] = {}
    for partition, replicas in placement.items():
        logs[(TOPIC, partition)] = {r: stored[r].get(partition, ([], "no directory"))
                                    for r in replicas}
    return logs


def run_chaos(seed: int, duration: float, brokers: int = 5, root: Path | None = None,
              log: Callable[[str], None] = print, max_faults: int = 2,
              known_bugs: bool = False) -> Report:
    """One schedule of duration seconds, then heal, settle and check."""
    report = Report(seed, duration, brokers, known_bugs=known_bugs)
    rng = random.Random(seed)
    log(f"chaos: seed {seed}, {duration:g}s, {brokers} brokers; replay: {report.replay}")
    with tempfile.TemporaryDirectory(prefix="chaos-", dir=root) as tmp:
        cluster = ChaosCluster(Path(tmp), brokers)
        history = History()
        workload = Workload("", history, random.Random(rng.random()),
                            list(range(brokers)), log)
        try:
            cluster.start()
            workload.bootstrap = cluster.bootstrap
            workload.start(TOPIC_CONFIGS)
            schedule = Schedule(cluster, rng, report, log, known_bugs)
            for kind, reason in report.skipped.items():
                log(f"chaos: no {kind} faults: {reason}")
            active: list[Undo] = []
            deadline = time.monotonic() + duration
            while time.monotonic() < deadline and not history.failed.is_set():
                if active and (len(active) >= max_faults or rng.random() < 0.6):
                    active.pop(rng.randrange(len(active)))()
                else:
                    active.append(schedule.inject())
                history.failed.wait(min(rng.uniform(0.5, 6.0),
                                        max(0.0, deadline - time.monotonic())))
            for undo in active:
                undo()
            log("chaos: schedule over, healing")
            cluster.heal()
            try:
                settle(cluster, workload, log)
            except TimeoutError as exc:
                # Liveness failed; what the replicas hold is still checked.
                report.violations.append(Violation("NOT_LIVE_AFTER_HEAL", str(exc)))
            workload.stop()
            report.violations += history.check(final_logs(cluster))
            report.violations += check_metadata(
                {b.index: b.meta_stored() for b in cluster.brokers[:3]})
        except BaseException as exc:
            report.violations.append(Violation("RUN_FAILED", f"{type(exc).__name__}: {exc}"))
            if not isinstance(exc, Exception):
                raise
        finally:
            try:
                workload.stop(timeout=30)
            except Exception as exc:  # noqa: BLE001 - the run's own failure comes first
                log(f"chaos: workload did not stop cleanly: {exc!r}")
            cluster.stop()
            report.counts = dict(history.counts)
            for violation in report.violations:
                log(f"VIOLATION {violation}")
            if report.violations:
                # The temporary directory goes: keep the brokers' logs for the post-mortem.
                kept = Path(tempfile.gettempdir()) / f"chaos-failed-{seed}"
                kept.mkdir(exist_ok=True)
                for broker in cluster.brokers:
                    if broker.log_path.exists():
                        shutil.copy(broker.log_path, kept / broker.log_path.name)
                log(f"chaos: broker logs kept in {kept}")
                for broker in cluster.brokers:
                    tail = broker.log().splitlines()[-15:]
                    log(f"--- broker {broker.index} log tail:\n" + "\n".join(tail))
    log(report.summary())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=None, help="default: random")
    parser.add_argument("--duration", type=float, default=300, help="seconds of faults")
    parser.add_argument("--brokers", type=int, default=5, choices=(3, 5))
    parser.add_argument("--runs", type=int, default=1, help="seeds seed, seed+1, ...")
    parser.add_argument("--known-bugs", choices=("skip", "include"), default="skip",
                        help="schedule the faults of KNOWN_BUGS too")
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason:
        print(f"chaos: cannot run: {reason}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    failed = []
    for n in range(args.runs):
        report = run_chaos(seed + n, args.duration, args.brokers,
                           known_bugs=args.known_bugs == "include")
        if report.violations:
            failed.append(report)
    for report in failed:
        print(f"FAILED: {report.replay}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

