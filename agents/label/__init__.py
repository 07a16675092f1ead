"""Human labelers, as in InstructGPT: a local web app where people rank K completions per prompt.

    textbandit collect --model SFT --prompts prompts.jsonl --rank none --out items.jsonl
    textbandit label add-labeler --db labels.sqlite --name ann        # prints ann's secret token once
    textbandit label serve --db labels.sqlite --items items.jsonl --overlap 0.2
    textbandit label agreement --db labels.sqlite
    textbandit label export --db labels.sqlite --out comparisons.jsonl --val-out val.jsonl
    textbandit rm --model SFT --train comparisons.jsonl --val val.jsonl --out rm

Modules, each readable on its own: ``ranking`` (validation of rankings, flags and scores, the paper's
pairwise agreement), ``db`` (the SQLite store: one transaction per submission), ``data`` (items in,
K-wise and TRL comparisons out), ``app`` (the Flask app), ``cli`` (the ``textbandit label`` command).
"""
