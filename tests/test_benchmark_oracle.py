"""benchmarks/ppo_oracle.py's GoldRewardModel: the gold labeler read back from token ids."""

import torch
from conftest import load_benchmark

from textbandit.layout import collate, encode_prompt, encode_response
from textbandit.task import load_task


def test_gold_reward_model_scores_joined_rows_as_the_gold_labeler_does():
    task = load_task("default")
    tok = task.load_tokenizer()
    prompts = [
        "instruction : list 2 colors . response :",
        "instruction : write about animals . include the word cat . response :",
        "instruction : list 3 food . response :",
    ]
    responses = ["red and blue .", "the dog is big .", "cake , bread and milk ."]
    ended = [True, True, False]  # the last was cut off (no EOS): the gold score halves its implicit part
    batch = collate(
        [encode_prompt(tok, p, 32) for p in prompts],
        [encode_response(tok, r, 24, add_eos=e) for r, e in zip(responses, ended)],
        tok.pad_token_id,
    )
    rm = load_benchmark("ppo_oracle").GoldRewardModel(task, tok, scale=2.0, shift=-1.0)
    got = rm.score(batch.input_ids, batch.attention_mask, batch.position_ids)
    want = torch.tensor(task.gold_scores(prompts, responses, ended)) * 2.0 - 1.0
    assert got.shape == (3,) and torch.allclose(got, want)
    assert len(set(want.tolist())) == 3  # three different gold scores: the rows were not mixed up
    assert task.gold_scores(prompts[2:], responses[2:], [True]) != task.gold_scores(prompts[2:], responses[2:], [False])
