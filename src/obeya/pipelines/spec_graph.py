"""The shape of a pipeline: stages, needs between jobs, cycles, and the order jobs run in."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from obeya.pipelines.spec_jobs import DEFAULT_STAGE, JobDraft
from obeya.pipelines.spec_values import Problems, did_you_mean, one_of


class Placed(Protocol):
    """A job as the graph sees it: a name in a stage, and the needs written for it."""

    @property
    def name(self) -> str: ...

    @property
    def stage(self) -> str: ...

    @property
    def needs(self) -> tuple[str, ...]: ...

    @property
    def needs_declared(self) -> bool: ...


def check_stages(problems: Problems, drafts: list[JobDraft], stages: Sequence[str]) -> None:
    """Report jobs whose stage is not one of ``stages``; their stage becomes None."""
    for draft in drafts:
        if draft.stage is None or draft.stage in stages:
            continue
        if not stages:  # already reported: there is no stage to check against
            draft.stage = None
            continue
        if draft.stage_position is None:
            problems.add(
                draft.position,
                f'{draft.where} has no stage and there is no "{DEFAULT_STAGE}" stage to '
                f"default to: add stage: with one of {one_of(stages)}",
            )
        else:
            hint = did_you_mean(draft.stage, stages) or (
                f" ({', '.join(stages)}): add it to stages or use one of those"
            )
            problems.add(
                draft.stage_position,
                f'{draft.where} is in stage "{draft.stage}", which is not in stages{hint}',
            )
        draft.stage = None


def check_needs(
    problems: Problems, drafts: list[JobDraft], stages: Sequence[str]
) -> dict[str, list[str]]:
    """Report needs on unknown jobs, on later stages and in cycles; the needs that hold."""
    by_name = {draft.name: draft for draft in drafts}
    rank = {stage: index for index, stage in enumerate(stages)}
    edges: dict[str, list[str]] = {}
    for draft in drafts:
        edges[draft.name] = []
        for need, position in draft.needs or []:
            other = by_name.get(need)
            if other is None:
                hint = did_you_mean(need, by_name) or " in this file"
                problems.add(position, f'{draft.where} needs "{need}", which is not a job{hint}')
            elif draft.stage is None or other.stage is None:
                continue  # already reported as a bad stage; the order between them is unknown
            elif rank[other.stage] > rank[draft.stage]:
                problems.add(
                    position,
                    f'{draft.where} in stage {draft.stage} needs "{need}" of the later stage '
                    f"{other.stage}: a job can only need jobs of its own or an earlier stage",
                )
            else:
                edges[draft.name].append(need)
    _check_cycles(problems, drafts, edges)
    return edges


def check_deploys(
    problems: Problems,
    drafts: list[JobDraft],
    stages: Sequence[str],
    edges: dict[str, list[str]],
) -> None:
    """A deploy job's artifact comes from a job that keeps artifacts and runs before it."""
    by_name = {draft.name: draft for draft in drafts}
    rank = {stage: index for index, stage in enumerate(stages)}
    for draft in drafts:
        name = draft.deploy_artifact
        if name is None or draft.deploy_position is None:
            continue
        source = by_name.get(name)
        if source is None:
            hint = did_you_mean(name, by_name) or " in this file"
            problems.add(
                draft.deploy_position,
                f'deploy.artifact of {draft.where} names "{name}", which is not a job{hint}',
            )
        elif not source.artifact_paths:
            problems.add(
                draft.deploy_position,
                f'deploy.artifact of {draft.where} names "{name}", which keeps no artifacts: '
                f"add artifacts: paths: to {name}",
            )
        elif name not in _ancestors(draft.name, by_name, rank, edges):
            problems.add(
                draft.deploy_position,
                f'{draft.where} deploys the artifact of "{name}", which does not run before '
                f"it: put {name} in an earlier stage or in the needs of {draft.name}",
            )


def _ancestors(
    name: str, by_name: dict[str, JobDraft], rank: dict[str, int], edges: dict[str, list[str]]
) -> set[str]:
    """The jobs that finish before ``name`` starts: its needs, or every earlier stage."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        draft = by_name[todo.pop()]
        if draft.needs is not None:
            before = edges[draft.name]
        else:
            stage = rank.get(draft.stage or "", 0)
            before = [
                other.name
                for other in by_name.values()
                if other.stage is not None and rank[other.stage] < stage
            ]
        for other in before:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def _check_cycles(problems: Problems, drafts: list[JobDraft], edges: dict[str, list[str]]) -> None:
    declared = {draft.name: index for index, draft in enumerate(drafts)}
    for group in _strongly_connected(list(declared), edges):
        start = min(group, key=declared.__getitem__)
        if len(group) == 1 and start not in edges[start]:
            continue
        cycle = _shortest_cycle(start, set(group), edges)
        draft = drafts[declared[start]]
        position = next(pos for need, pos in draft.needs or [] if need == cycle[1])
        problems.add(position, f"needs form a cycle: {' → '.join(cycle)}")


def _strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm without recursion, so a long chain of needs cannot overflow."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, next_edge = work.pop()
            if next_edge == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            for position in range(next_edge, len(edges[node])):
                other = edges[node][position]
                if other not in index:
                    work += [(node, position + 1), (other, 0)]
                    break
                if other in on_stack:
                    low[node] = min(low[node], index[other])
            else:
                if low[node] == index[node]:
                    group: list[str] = []
                    while not group or group[-1] != node:
                        group.append(stack.pop())
                        on_stack.discard(group[-1])
                    groups.append(group)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
    return groups


def _shortest_cycle(start: str, group: set[str], edges: dict[str, list[str]]) -> list[str]:
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for other in edges[node]:
            if other == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start] if node != start else [start, start]
            if other in group and other not in came_from:
                came_from[other] = node
                queue.append(other)
    raise AssertionError("a strongly connected group always has a cycle through each job")


def run_order(names: list[str], stage_of: dict[str, int], edges: dict[str, list[str]]) -> list[str]:
    """Jobs in the order they can run: stage by stage, a job after its needs, else as written.

    ``names`` is in the order the jobs were written; ``edges`` holds no cycle.
    """
    written = {name: index for index, name in enumerate(names)}
    waiting = {name: len(edges[name]) for name in names}
    needed_by: dict[str, list[str]] = {name: [] for name in names}
    for name in names:
        for need in edges[name]:
            needed_by[need].append(name)
    ready = [(stage_of[name], written[name], name) for name in names if not waiting[name]]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, _, name = heapq.heappop(ready)
        order.append(name)
        for later in needed_by[name]:
            waiting[later] -= 1
            if not waiting[later]:
                heapq.heappush(ready, (stage_of[later], written[later], later))
    return order


def effective_needs(jobs: Sequence[Placed], stages: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """What each of ``jobs`` waits for when exactly these jobs run.

    Declared needs on jobs that do not run are dropped. A job without declared needs waits
    for every job of the nearest earlier stage that has jobs running (GitLab's stages).
    """
    running = {job.name for job in jobs}
    rank = {stage: index for index, stage in enumerate(stages)}
    by_stage: dict[int, list[str]] = {}
    for job in jobs:
        by_stage.setdefault(rank[job.stage], []).append(job.name)
    result: dict[str, tuple[str, ...]] = {}
    for job in jobs:
        if job.needs_declared:
            result[job.name] = tuple(need for need in job.needs if need in running)
        else:
            earlier = [index for index in by_stage if index < rank[job.stage]]
            result[job.name] = tuple(by_stage[max(earlier)]) if earlier else ()
    return result
