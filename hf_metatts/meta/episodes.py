"""Episodes: for each of B tasks, k support and q query utterances drawn from a ``datasets`` task split.

An episode is a pure function of ``(seed, episode_index, rank)``: deterministic, resumable from its index
alone, and different on every rank (rank r takes the tasks ``perm[r*B:(r+1)*B]`` of one shared permutation).

A collated episode is a nested structure the Trainer moves to the device as is::

    {"support": [[batch, ...] per task], "query": [[batch, ...] per task], "task_index": LongTensor (B,)}

where each ``batch`` is the collator's dict (``input_ids`` (b, N), ``labels`` (b, T, 80), ...), the
utterances of a set sorted by length and split into batches of ``max_utterances_per_batch`` to limit padding.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from .errors import InvalidMetaConfigError, TaskSplitTooSmallError

logger = logging.getLogger(__name__)

Collator = Callable[[list[dict]], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class EpisodeIndices:
    """Row indices of one episode on one rank.

    Attributes:
        tasks: the B task values (e.g. speaker ids).
        task_index: position of each task in the sampler's sorted task list, (B,).
        support: per task, the k support rows, as length-sorted batches of row indices.
        query: per task, the q query rows, as length-sorted batches of row indices.
    """

    tasks: list
    task_index: list[int]
    support: list[list[list[int]]]
    query: list[list[list[int]]]


class EpisodeSampler:
    """Draw episodes from a ``datasets.Dataset`` grouped by ``task_column``.

    Args:
        dataset: the task split (a ``datasets.Dataset``).
        task_column: the column that defines a task (``speaker_id``, ``language``, ``style``).
        shots: k support utterances per task. query_shots: q query utterances per task (disjoint from support).
        tasks_per_episode: B tasks per episode per rank.
        seed: seed of every draw. rank / world_size: this process and the number of processes.
        lengths: utterance lengths (for length batching); default: ``length_column`` or ``len(labels)``.
        max_utterances_per_batch: split each set into length-sorted batches of at most this size (0: one batch).

    Raises:
        TaskSplitTooSmallError: a task holds fewer than ``shots + query_shots`` utterances (names them all).
    """

    def __init__(
        self,
        dataset,
        task_column: str = "speaker_id",
        shots: int = 4,
        query_shots: int = 4,
        tasks_per_episode: int = 4,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        lengths: Sequence[int] | None = None,
        length_column: str | None = None,
        max_utterances_per_batch: int = 0,
    ):
        if task_column not in dataset.column_names:
            raise InvalidMetaConfigError(
                f"The task column {task_column!r} is not in the dataset (columns: {dataset.column_names}); "
                "set task_column to one of them."
            )
        self.dataset = dataset
        self.task_column = task_column
        self.shots, self.query_shots = int(shots), int(query_shots)
        self.tasks_per_episode = int(tasks_per_episode)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.max_utterances_per_batch = int(max_utterances_per_batch)
        values = dataset[task_column]
        groups: dict = {}
        for row, value in enumerate(values):
            groups.setdefault(value, []).append(row)
        self.tasks = sorted(groups, key=str)
        self.rows_by_task = {task: np.asarray(groups[task], dtype=np.int64) for task in self.tasks}
        self.lengths = self._lengths(dataset, lengths, length_column)
        self._check_sizes()
        needed = self.tasks_per_episode * self.world_size
        if len(self.tasks) < needed:
            logger.warning(
                "%d tasks for %d per episode on %d ranks: some ranks see the same task in one episode.",
                len(self.tasks), self.tasks_per_episode, self.world_size,
            )

    @staticmethod
    def _lengths(dataset, lengths, length_column) -> np.ndarray:
        if lengths is not None:
            return np.asarray(lengths, dtype=np.int64)
        if length_column is not None:
            return np.asarray(dataset[length_column], dtype=np.int64)
        if "labels" in dataset.column_names:
            return np.asarray([len(x) for x in dataset["labels"]], dtype=np.int64)
        if "input_ids" in dataset.column_names:
            return np.asarray([len(x) for x in dataset["input_ids"]], dtype=np.int64)
        return np.zeros(len(dataset), dtype=np.int64)

    def _check_sizes(self) -> None:
        need = self.shots + self.query_shots
        small = {task: len(rows) for task, rows in self.rows_by_task.items() if len(rows) < need}
        if small:
            listed = ", ".join(f"{task!r}: {n}" for task, n in sorted(small.items(), key=lambda kv: str(kv[0])))
            raise TaskSplitTooSmallError(
                f"{len(small)} of {len(self.tasks)} tasks of column {self.task_column!r} hold fewer than "
                f"shots + query_shots = {self.shots} + {self.query_shots} = {need} utterances ({listed}). "
                "Lower shots/query_shots, or drop those tasks from the split (e.g. with Dataset.filter)."
            )

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def _batches(self, rows: np.ndarray) -> list[list[int]]:
        order = rows[np.argsort(self.lengths[rows], kind="stable")]
        size = self.max_utterances_per_batch or len(order)
        return [order[i : i + size].tolist() for i in range(0, len(order), size)]

    def task_draw(self, task_position: int, draw: int) -> tuple[list[list[int]], list[list[int]]]:
        """Support and query batches of one task for a given draw number (deterministic)."""
        task = self.tasks[task_position]
        rng = np.random.default_rng([self.seed, 7919, draw, task_position])
        rows = rng.choice(self.rows_by_task[task], size=self.shots + self.query_shots, replace=False)
        return self._batches(rows[: self.shots]), self._batches(rows[self.shots :])

    def episode(self, index: int) -> EpisodeIndices:
        """The indices of episode ``index`` on this rank."""
        rng = np.random.default_rng([self.seed, index])
        n = self.num_tasks
        needed = self.tasks_per_episode * self.world_size
        perm = np.concatenate([rng.permutation(n) for _ in range(-(-needed // n))])
        mine = perm[self.rank * self.tasks_per_episode : (self.rank + 1) * self.tasks_per_episode]
        support, query = [], []
        for position in mine:
            s, q = self.task_draw(int(position), index * self.world_size + self.rank)
            support.append(s)
            query.append(q)
        return EpisodeIndices(
            tasks=[self.tasks[p] for p in mine], task_index=[int(p) for p in mine], support=support, query=query
        )

    def collate(self, indices: EpisodeIndices, collator: Collator) -> dict:
        """Rows -> tensors: ``{"support": [[batch]], "query": [[batch]], "task_index": (B,)}``."""

        def load(batches):
            return [collator([self.dataset[int(r)] for r in batch]) for batch in batches]

        return {
            "support": [load(s) for s in indices.support],
            "query": [load(q) for q in indices.query],
            "task_index": torch.tensor(indices.task_index, dtype=torch.long),
        }

    def validation_episodes(self, num_tasks: int, draw: int = 0) -> list[EpisodeIndices]:
        """One single-task episode for each of the first ``num_tasks`` tasks: a fixed validation set."""
        episodes = []
        for position in range(min(num_tasks, self.num_tasks)):
            s, q = self.task_draw(position, draw)
            episodes.append(EpisodeIndices([self.tasks[position]], [position], [s], [q]))
        return episodes


class EpisodeDataset(TorchDataset):
    """Map-style dataset whose item ``i`` is the collated episode ``i`` of this rank.

    Because an item is a pure function of its index, a ``DataLoader`` over it resumes exactly by skipping
    indices (nothing is generated for the skipped episodes).
    """

    def __init__(self, sampler: EpisodeSampler, collator: Collator, num_episodes: int, start: int = 0):
        self.sampler, self.collator = sampler, collator
        self.num_episodes, self.start = int(num_episodes), int(start)

    def __len__(self) -> int:
        return self.num_episodes

    def __getitem__(self, index: int) -> dict:
        return self.sampler.collate(self.sampler.episode(self.start + int(index)), self.collator)


def first_item(items: list):
    """``collate_fn`` of a batch-size-1 loader over :class:`EpisodeDataset`."""
    return items[0]
