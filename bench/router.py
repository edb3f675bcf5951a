"""Router speed: assignment decisions as agents free up, against a naive linear scan.

    .venv/bin/python bench/router.py [--waiting 100000] [--decisions 20000]

Workload (deterministic, `--seed`): 20 skills and 5 languages. Agents get 2-4 random skills
at levels 1-5, 1-2 languages (English for most), capacity 100 (one in five: 150) and start
full with work of their own kind (calls 100, chats 35, emails 20 of the budget).
Conversations draw one of 100 request types (1-2 skills at minimum levels 1-3), a language
and a channel (chat 50 %, email 30 %, call 20 %); `--waiting` of them wait, at random
priorities and ages, under a policy of one catch-all filter.

Measured at 1k, 10k and 100k agents, each with the full backlog, after `--warmup` decisions:
* one decision: a random agent finishes one of its conversations and the router offers it
  the most urgent waiting work it qualifies for and has budget for (as many as fit); each
  offer is accepted at once. Latency is that whole call; decisions_per_s counts offers.
  Both are CPU time of the benchmark thread: on a shared machine a preemption adds a whole
  time slice to whichever call it lands in. The same in wall-clock time is reported as
  wall_*, with the 1-minute load average.
* growth_1k_to_100k: mean time per decision at 100k agents / at 1k agents.
* the same decisions with a naive router that scans every waiting conversation for the
  best one the agent fits (`--naive-decisions` of them, at 10k agents);
  naive_ratio = our decisions/s / naive decisions/s.
Targets at 10k agents: p99 <= 1 ms, >= 20,000 decisions/s; growth <= 2. Figures only.
The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import percentile

from hub.routing import (
    AgentProfile,
    ManualClock,
    Offered,
    Policy,
    Presence,
    Requirements,
    Router,
    Task,
    load_policy,
)

SKILLS = [f"skill{i:02d}" for i in range(20)]
LANGUAGES = ["en", "zh", "es", "fr", "de"]
CHANNELS = [("webchat", 0.5), ("email", 0.3), ("voice", 0.2)]
COSTS = {"webchat": 35, "email": 20, "voice": 100}
POLICY = f"""\
skills: [{", ".join(SKILLS)}]
aging_s: 120
inboxes:
  "*":
    filters:
      - name: all
        steps: [{{timeout_s: 86400}}]
"""


@dataclass(frozen=True, slots=True)
class RequestType:
    skills: dict[str, int]


def request_types(rng: random.Random, n: int = 100) -> list[RequestType]:
    out = []
    for _ in range(n):
        chosen = rng.sample(SKILLS, 1 if rng.random() < 0.7 else 2)
        out.append(RequestType({s: rng.randint(1, 3) for s in chosen}))
    return out


def random_profile(rng: random.Random, agent_id: int) -> AgentProfile:
    skills = {s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(2, 4))}
    languages = {"en"} if rng.random() < 0.8 else set()
    while len(languages) < rng.randint(1, 2):
        languages.add(rng.choice(LANGUAGES))
    capacity = 150 if rng.random() < 0.2 else 100
    return AgentProfile(agent_id, skills, frozenset(languages), capacity=capacity)


def random_channel(rng: random.Random) -> str:
    x, acc = rng.random(), 0.0
    for channel, share in CHANNELS:
        acc += share
        if x < acc:
            return channel
    return CHANNELS[-1][0]


class Workload:
    """A router with `agents` agents at full capacity and `waiting` conversations queued."""

    def __init__(self, policy: Policy, agents: int, waiting: int, seed: int):
        self.rng = random.Random(seed)
        self.clock = ManualClock()
        self.router = Router(policy, self.clock)
        self.types = request_types(self.rng)
        self.held: dict[int, list[int]] = {}
        self.next_id = 1
        self.profiles = [random_profile(self.rng, i) for i in range(1, agents + 1)]
        for profile in self.profiles:
            self.router.upsert_agent(profile, Presence.BUSY)
            self.held[profile.agent_id] = self._fill_with_own_work(profile)
        self.clock.advance(3600)
        self.backlog = [self._random_task() for _ in range(waiting)]
        for task in self.backlog:
            self.router.enqueue(task)
        for profile in self.profiles:
            self._take(self.router.set_presence(profile.agent_id, Presence.AVAILABLE))

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _fill_with_own_work(self, profile: AgentProfile) -> list[int]:
        """Work the agent already holds: enqueued while it is busy, then given to it."""
        room = profile.capacity or 100
        held = []
        while room >= 20:
            channel = self.rng.choice([c for c, cost in COSTS.items() if cost <= room])
            room -= COSTS[channel]
            skill = self.rng.choice(sorted(profile.skills))
            task = Task(
                self._new_id(),
                "support",
                channel,
                Requirements({skill: 1}, self.rng.choice(sorted(profile.languages))),
                self.clock(),
            )
            self.router.enqueue(task)
            self.router.reassign(task.id, profile.agent_id)
            held.append(task.id)
        return held

    def _random_task(self) -> Task:
        kind = self.rng.choice(self.types)
        language = "en" if self.rng.random() < 0.6 else self.rng.choice(LANGUAGES)
        return Task(
            self._new_id(),
            "support",
            random_channel(self.rng),
            Requirements(kind.skills, language, priority=self.rng.choice([0, 1, 1, 1, 2, 3])),
            self.clock() - self.rng.uniform(0, 3600),
        )

    def _take(self, decisions: list[Any]) -> int:
        offers = 0
        for d in decisions:
            if isinstance(d, Offered):
                self.router.accept(d.task_id, d.agent_id)
                self.held[d.agent_id].append(d.task_id)
                offers += 1
        return offers

    def pick_finish(self) -> tuple[int, int]:
        """A random agent that holds work, and one of its conversations."""
        while True:
            agent = self.rng.choice(self.profiles).agent_id
            held = self.held[agent]
            if held:
                return agent, held.pop(self.rng.randrange(len(held)))

    def run(self, decisions: int) -> tuple[list[float], list[float], int]:
        """Per-call CPU and wall latencies (seconds) and the offers made.

        CPU time (this thread's) is the router's cost; wall time also holds whatever else
        the shared machine did meanwhile (a preemption adds milliseconds to one call).
        """
        cpu: list[float] = []
        wall: list[float] = []
        offers = 0
        thread_time, perf_counter = time.thread_time, time.perf_counter
        gc.collect()
        gc.disable()  # collection pauses belong to the process, not to the router
        try:
            while offers < decisions:
                _agent, task_id = self.pick_finish()
                started_wall, started_cpu = perf_counter(), thread_time()
                made = self._take(self.router.finish(task_id))
                cpu.append(thread_time() - started_cpu)
                wall.append(perf_counter() - started_wall)
                offers += made
                self.clock.advance(0.001)
        finally:
            gc.enable()
        return cpu, wall, offers


class NaiveRouter:
    """The baseline: one list of waiting work, scanned in full for each decision."""

    def __init__(self, workload: Workload):
        self.policy_aging = 120.0
        self.waiting = [t for t in workload.backlog if workload.router.is_waiting(t.id)]
        self.profiles = {p.agent_id: p for p in workload.profiles}

    def decide(self, agent_id: int, room: int) -> Task | None:
        profile = self.profiles[agent_id]
        best, best_key, best_i = None, 0.0, -1
        for i, task in enumerate(self.waiting):
            req = task.requirements
            if COSTS[task.channel] > room or req.language not in profile.languages:
                continue
            if any(profile.skills.get(s, 0) < lvl for s, lvl in req.skills.items()):
                continue
            key = task.created_at - req.priority * self.policy_aging
            if best is None or key < best_key:
                best, best_key, best_i = task, key, i
        if best is not None:
            self.waiting[best_i] = self.waiting[-1]
            self.waiting.pop()
        return best


def run_naive(workload: Workload, decisions: int) -> tuple[int, float]:
    naive = NaiveRouter(workload)
    made, total = 0, 0.0
    for _ in range(decisions):
        agent, _task = workload.pick_finish()
        started = time.thread_time()
        room = 35  # what a finished chat frees: the same question the router answers
        while (task := naive.decide(agent, room)) is not None:
            room -= COSTS[task.channel]
            made += 1
        total += time.thread_time() - started
    return made, total


def _pct(values: list[float], pct: float) -> float:
    found = percentile(values, pct)
    assert found is not None
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--naive-decisions", type=int, default=100)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    policy = load_policy(POLICY, "bench policy")
    figures: dict[int, dict[str, float]] = {}
    naive_per_s = None
    for size in args.sizes:
        started = time.perf_counter()
        workload = Workload(policy, size, args.waiting, args.seed)
        setup_s = time.perf_counter() - started
        workload.run(args.warmup)  # first-touch allocations are not the router's steady state
        waiting = workload.router.waiting_count
        cpu, wall, offers = workload.run(args.decisions)
        cpu.sort()
        wall.sort()
        row = {
            "agents": size,
            "waiting_at_start": waiting,  # after the warm-up decisions
            "setup_s": round(setup_s, 1),
            "decisions": offers,
            "decisions_per_s": round(offers / sum(cpu)),
            "mean_us": round(sum(cpu) / offers * 1e6, 1),
            "p50_ms": round(_pct(cpu, 50) * 1e3, 4),
            "p99_ms": round(_pct(cpu, 99) * 1e3, 4),
            "wall_decisions_per_s": round(offers / sum(wall)),
            "wall_p50_ms": round(_pct(wall, 50) * 1e3, 4),
            "wall_p99_ms": round(_pct(wall, 99) * 1e3, 4),
            "loadavg_1m": os.getloadavg()[0],
        }
        figures[size] = row
        print(json.dumps(row), flush=True)
        if size == 10_000:
            made, naive_total = run_naive(workload, args.naive_decisions)
            naive_per_s = made / naive_total if naive_total else 0.0
            print(
                json.dumps(
                    {
                        "naive_agents": size,
                        "naive_decisions": made,
                        "naive_decisions_per_s": round(naive_per_s, 1),
                    }
                ),
                flush=True,
            )
        del workload  # each size is measured alone, not beside the previous one's heap
        gc.collect()
    main_row = figures.get(10_000) or figures[args.sizes[0]]
    growth = None
    if 1_000 in figures and 100_000 in figures:
        growth = round(figures[100_000]["mean_us"] / figures[1_000]["mean_us"], 2)
    print(
        json.dumps(
            {
                "bench": "router",
                "agents": main_row["agents"],
                "decisions_per_s": main_row["decisions_per_s"],
                "p99_ms": main_row["p99_ms"],
                "wall_decisions_per_s": main_row["wall_decisions_per_s"],
                "wall_p99_ms": main_row["wall_p99_ms"],
                "growth_1k_to_100k": growth,
                "naive_ratio": round(main_row["decisions_per_s"] / naive_per_s, 1)
                if naive_per_s
                else None,
            }
        )
    )


if __name__ == "__main__":
    main()
