"""Episode sampling: sizes, disjointness, determinism, rank split, length batching, errors."""

import pytest
from test_meta_toy import toy_collator, toy_dataset

from hf_metatts.meta import EpisodeDataset, EpisodeSampler, InvalidMetaConfigError, TaskSplitTooSmallError


def sampler(**kw):
    args = {"shots": 3, "query_shots": 2, "tasks_per_episode": 2, "seed": 5}
    args.update(kw)
    return EpisodeSampler(toy_dataset(num_speakers=6, per_speaker=10), "speaker_id", **args)


def test_each_task_gets_k_support_and_q_disjoint_query_rows_of_that_task():
    s = sampler()
    ep = s.episode(0)
    tasks = s.dataset["speaker_id"]
    assert len(ep.tasks) == 2
    for task, sup, qry in zip(ep.tasks, ep.support, ep.query):
        sup_rows = [r for b in sup for r in b]
        qry_rows = [r for b in qry for r in b]
        assert len(sup_rows) == 3 and len(qry_rows) == 2
        assert not set(sup_rows) & set(qry_rows)
        assert {tasks[r] for r in sup_rows + qry_rows} == {task}


def test_episodes_are_deterministic_by_seed_and_index():
    assert sampler().episode(7) == sampler().episode(7)
    assert sampler().episode(7) != sampler(seed=6).episode(7)
    assert sampler().episode(7) != sampler().episode(8)


def test_ranks_draw_different_tasks():
    r0, r1 = sampler(rank=0, world_size=2), sampler(rank=1, world_size=2)
    for i in range(20):
        assert not set(r0.episode(i).tasks) & set(r1.episode(i).tasks)


def test_length_batching_sorts_and_splits_each_set():
    s = sampler(shots=6, query_shots=2, max_utterances_per_batch=2)
    ep = s.episode(3)
    for sup in ep.support:
        assert [len(b) for b in sup] == [2, 2, 2]
        flat = [s.lengths[r] for b in sup for r in b]
        assert flat == sorted(flat)
    collated = s.collate(ep, toy_collator)
    batch = collated["support"][0][0]
    assert batch["labels"].shape[0] == 2 and batch["labels"].shape[2] == 4
    assert collated["task_index"].tolist() == ep.task_index


def test_episode_dataset_item_depends_only_on_its_index():
    s = sampler()
    full = EpisodeDataset(s, toy_collator, 10)
    resumed = EpisodeDataset(s, toy_collator, 10)
    a, b = full[6], resumed[6]
    assert a["task_index"].tolist() == b["task_index"].tolist()
    assert (a["query"][1][0]["labels"] == b["query"][1][0]["labels"]).all()


def test_too_small_tasks_error_names_the_tasks_and_numbers():
    ds = toy_dataset(num_speakers=3, per_speaker=10).select([*range(0, 10), *range(10, 14), *range(20, 26)])
    with pytest.raises(TaskSplitTooSmallError) as err:
        EpisodeSampler(ds, "speaker_id", shots=4, query_shots=4)
    msg = str(err.value)
    assert "'spk1': 4" in msg and "'spk2': 6" in msg and "= 8" in msg and "spk0" not in msg


def test_unknown_task_column_is_a_clear_error():
    with pytest.raises(InvalidMetaConfigError, match="language"):
        EpisodeSampler(toy_dataset(), "language")
