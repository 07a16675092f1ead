"""textbandit: RLHF as InstructGPT did it, as a Gymnasium bandit environment.

``import textbandit`` registers ``TextBandit-v0``::

    import gymnasium as gym
    import textbandit

    env = gym.make("TextBandit-v0")                      # the embedded default task
    envs = gym.make_vec("TextBandit-v0", num_envs=64)    # batched forward passes, in chunks
                                                         # of forward_batch_size rows
    env = gym.make("TextBandit-v0", task="runs/quick/export")   # a pipeline run's task and models
    env = gym.make("TextBandit-v0", task=textbandit.Task(...))  # your own (textbandit.task.base)
    env = gym.make("TextBandit-v0", reward_fns=[my_reward])     # TRL-style reward functions (textbandit.rewards)
    env = textbandit.TextActions(gym.make("TextBandit-v0"))     # the response as text (textbandit.wrappers)

See ``textbandit.env.TextBanditEnv`` for the contract.
"""

from gymnasium.envs.registration import register, registry

from textbandit.task import Task, load_task
from textbandit.wrappers import TextActions

__all__ = ["Task", "TextActions", "load_task", "__version__"]

__version__ = "0.1.0"

if "TextBandit-v0" not in registry:
    register(
        id="TextBandit-v0",
        entry_point="textbandit.env:TextBanditEnv",
        vector_entry_point="textbandit.vector_env:TextBanditVectorEnv",
    )
