"""Data parallelism on ``torch.distributed``: the process group, this rank's device, its share of the data.

Every trainer calls :func:`setup` first. Under ``torchrun`` (``WORLD_SIZE`` > 1 in the
environment) it initialises the default process group from the environment (``env://``: torchrun
sets ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``) with a
timeout, so that a rank that hangs makes the others fail with an error after ``timeout_s``
seconds instead of waiting forever (a rank that dies is noticed by torchrun, which stops the
others at once). A launch whose process group cannot be set up fails loudly; it never runs
``WORLD_SIZE`` unconnected copies. Without torchrun (``WORLD_SIZE`` unset or 1) nothing is
initialised and every helper here is a no-op, unless the caller initialised a process group
itself, which is then used as it is.

- :func:`setup` -> :class:`Dist`: rank, world size, local rank and this rank's device (``'auto'``
  and ``'cuda'`` mean ``cuda:LOCAL_RANK``, never every rank on ``cuda:0``);
- :func:`wrap`: the model in ``DistributedDataParallel``, or sharded with FSDP2 (``fully_shard``);
  :func:`unwrap` gives back the module whose weights are saved;
- :func:`share`: this rank's deterministic share of a global list (a step's examples);
- :func:`all_reduce`, :func:`all_gather_rows`, :func:`all_gather_objects`, :func:`broadcast_object`:
  the collectives the trainers need besides DDP's gradient all-reduce (statistics, rollouts);
- :func:`full_state_dict`: the whole model's weights on every rank (FSDP2 gathers them), and
  :func:`plain_copy`, an unsharded model holding them, for rank 0 to save.

Rank 0 writes every file (checkpoints, metrics, reports, the output folder's lock); every rank
reads a checkpoint when a run resumes, so on several nodes the output folder must be on a
filesystem they share.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT_S = 1800.0
"""how long a collective may wait for the other ranks before the run stops with an error"""

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Dist:
    """Where this process stands in the run: its rank among ``world_size``, its rank on its node
    (``local_rank``) and the device it computes on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether a process group is initialised (collectives run; with one rank they change nothing)."""
        return dist.is_available() and dist.is_initialized()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"the environment variable {name}={value!r} is not an int; torchrun sets it") from None


def launched_world_size() -> int:
    """``WORLD_SIZE`` as torchrun set it (1 without torchrun)."""
    return _env_int("WORLD_SIZE", 1)


def device_for(device: str | torch.device, local_rank: int) -> torch.device:
    """This rank's device: ``'auto'`` is ``cuda:LOCAL_RANK`` when CUDA is available (else the CPU),
    ``'cuda'`` is ``cuda:LOCAL_RANK``; an explicit ``'cuda:i'`` or ``'cpu'`` is kept.

    >>> device_for("cpu", 3)
    device(type='cpu')
    """
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        if not torch.cuda.is_available():
            raise ValueError("device='cuda' but CUDA is not available here; use device='cpu' or 'auto'")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} CUDA device(s); "
                "launch at most that many processes per node (torchrun --nproc_per_node)"
            )
        device = torch.device("cuda", local_rank)
    return device


def setup(device: str | torch.device = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> Dist:
    """Initialise the process group when launched by torchrun (see the module docstring) and
    return this rank's :class:`Dist`. Idempotent: a group that exists already is used as it is.

    >>> setup("cpu")  # no torchrun: one process, no process group
    Dist(rank=0, world_size=1, local_rank=0, device=device(type='cpu'))
    """
    if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
        raise ValueError(f"dist_timeout_s={timeout_s!r}; it must be a number of seconds > 0")
    launched = launched_world_size()
    local_rank = _env_int("LOCAL_RANK", 0)
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        if launched > 1 and launched != world:
            raise RuntimeError(
                f"WORLD_SIZE={launched} in the environment but the initialised process group has {world} "
                "ranks; initialise it with the launcher's settings (init_method='env://')"
            )
        result = Dist(rank, world, local_rank, device_for(device, local_rank))
    elif launched > 1:
        missing = [v for v in TORCHRUN_VARIABLES if v not in os.environ]
        if missing:
            raise RuntimeError(
                f"WORLD_SIZE={launched} but {', '.join(missing)} not set: launch the run with torchrun "
                "(see README.md, 'Several GPUs and nodes'), or unset WORLD_SIZE to run one process"
            )
        if not dist.is_available():
            raise RuntimeError(f"WORLD_SIZE={launched} but this torch build has no torch.distributed")
        target = device_for(device, local_rank)
        if target.type == "cuda":
            torch.cuda.set_device(target)
            backend = "cpu:gloo,cuda:nccl"  # NCCL for tensors on the GPU, gloo for objects on the CPU
        else:
            backend = "gloo"
        try:
            dist.init_process_group(
                backend,
                init_method="env://",
                timeout=timedelta(seconds=timeout_s),
                **({"device_id": target} if target.type == "cuda" else {}),
            )
        except Exception as e:  # a failed rendezvous must stop the run, never leave N unconnected copies
            raise RuntimeError(
                f"could not set up the process group of {launched} ranks at "
                f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} ({type(e).__name__}: {e})"
            ) from e
        result = Dist(dist.get_rank(), dist.get_world_size(), local_rank, target)
    else:
        result = Dist(0, 1, local_rank, device_for(device, 0 if local_rank is None else local_rank))
    if result.device.type == "cuda":
        torch.cuda.set_device(result.device)
    return result


# --- models ------------------------------------------------------------------------------------


def wrap(model: torch.nn.Module, d: Dist, fsdp: bool = False, methods: tuple[str, ...] = ()) -> torch.nn.Module:
    """The module a training step calls: ``model`` itself without a process group, else in
    ``DistributedDataParallel`` (gradients averaged over ranks in the backward pass), or with
    ``fsdp`` sharded in place by FSDP2 (``fully_shard`` on each transformer block, then the whole).

    The model must be on ``d.device`` already. Call the wrapped module's ``forward`` in the
    update (DDP averages only the gradients of that call), and :func:`unwrap` it to save.
    ``methods``: other methods of ``model`` that run its layers (a policy's ``generate``): FSDP2
    gathers the whole model's weights around them as around ``forward``.
    """
    if not d.active:
        return model
    if fsdp:
        from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

        for module in transformer_blocks(model):
            fully_shard(module)
        fully_shard(model)
        for name in methods:
            register_fsdp_forward_method(model, name)
        return model
    # no buffer sync at each forward: these models have no running statistics, and a forward that is
    # not a collective may then run a different number of times on each rank (evaluation)
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    params = inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync_kw = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
    return DistributedDataParallel(
        model, device_ids=[d.device.index] if d.device.type == "cuda" else None, **no_sync_kw
    )


def transformer_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a Hugging Face model (the classes its ``_no_split_modules`` names):
    FSDP2 shards each on its own, so only one block's full weights exist at a time."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    blocks = [m for m in model.modules() if type(m).__name__ in names and m is not model]
    if not blocks:
        raise ValueError(
            f"fsdp=True found no transformer blocks in {type(model).__name__} (no _no_split_modules); "
            "FSDP2 shards Hugging Face models block by block: use fsdp=False (DDP) for this model"
        )
    return blocks


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside ``DistributedDataParallel`` (FSDP2 shards in place: the module itself)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether FSDP2 shards ``model`` (its parameters are DTensors)."""
    return any(type(p).__name__ == "DTensor" for p in unwrap(model).parameters())


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights as plain tensors: gathered from every rank under FSDP2 (a
    collective: every rank calls it), the module's own ``state_dict`` otherwise."""
    model = unwrap(model)
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=False))


def plain_copy(model: torch.nn.Module, state: dict) -> torch.nn.Module:
    """An unsharded copy of the Hugging Face model ``model`` (or of a sharded one) on the CPU, holding
    ``state`` (whole weights, as :func:`full_state_dict` gives them): what rank 0 saves under FSDP2."""
    from transformers import PreTrainedModel

    cls = next(c for c in type(model).__mro__ if issubclass(c, PreTrainedModel) and not c.__name__.startswith("FSDP"))
    copy = cls(model.config)
    copy.load_state_dict({k: v.detach().cpu() for k, v in state.items()})
    return copy


def load_full_state_dict(model: torch.nn.Module, state: dict) -> None:
    """Load whole-model weights (as :func:`full_state_dict` gave them) into a plain or sharded model."""
    model = unwrap(model)
    if not is_sharded(model):
        model.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's state to checkpoint: whole tensors under FSDP2 (a collective), its own otherwise."""
    if not is_sharded(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(unwrap(model), optimizer, options=StateDictOptions(full_state_dict=True))


def load_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load what :func:`optimizer_state` returned."""
    if not is_sharded(model):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(unwrap(model), optimizer, state, options=StateDictOptions(full_state_dict=True))


@contextlib.contextmanager
def no_sync(model: torch.nn.Module, skip: bool):
    """With ``skip``, a context in which the gradients of a backward pass are not averaged over the
    ranks yet (the micro-batches of a step before its last: DDP's ``no_sync``, FSDP2's
    ``set_requires_gradient_sync(False)``); otherwise, or without data parallelism, a no-op."""
    if skip and hasattr(model, "no_sync"):
        with model.no_sync():
            yield
    elif skip and hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


# --- data ----------------------------------------------------------------------------------------


def share(items: list, rank: int, world_size: int) -> list:
    """Rank ``rank``'s contiguous share of ``items`` (shares differ in size by at most one, in rank
    order, so the ranks' shares put together are ``items``).

    >>> [share(list(range(5)), r, 2) for r in range(2)]
    [[0, 1], [2, 3, 4]]
    """
    n = len(items)
    return items[rank * n // world_size : (rank + 1) * n // world_size]


def share_batches(items: list, batch_size: int, rank: int = 0, world_size: int = 1) -> list[tuple[list, bool]]:
    """This rank's :func:`share` of ``items`` in batches of ``batch_size``, as ``(batch, real)``, with as
    many batches on every rank: a rank whose share is short (or empty) gets copies of ``items[:1]``
    marked ``real=False``, to forward and weigh 0. Collectives (DDP's backward, FSDP2's every
    forward) then line up across ranks; with one rank these are the batches of ``items`` in order.

    >>> share_batches([1, 2, 3], 2, rank=1, world_size=2)
    [([2, 3], True)]
    >>> share_batches([1, 2, 3], 1, rank=0, world_size=2)
    [([1], True), ([1], False)]
    """
    mine = share(items, rank, world_size)
    longest = -(-len(items) // world_size)  # the largest share
    out = []
    for j in range(max(1, -(-longest // batch_size))):
        part = mine[j * batch_size : (j + 1) * batch_size]
        out.append((part, True) if part else (items[:1], False))
    return out


# --- collectives -------------------------------------------------------------------------------


def all_reduce_sums(values: dict) -> dict:
    """The sum over ranks of each number in ``values`` (a dict of numbers, the same keys on every
    rank); ``values`` itself without a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    keys = sorted(values)
    total = all_reduce(torch.tensor([float(values[k]) for k in keys], dtype=torch.float64))
    return dict(zip(keys, total.tolist()))


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """``tensor`` reduced over ranks in place (``'sum'``, ``'max'``, ``'min'``) and returned; as is
    without a process group."""
    if dist.is_available() and dist.is_initialized():
        ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
        dist.all_reduce(tensor, op=ops[op])
    return tensor


def all_gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` (the same shape on each) stacked along dim 0 in rank order; ``tensor``
    itself without a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def all_gather_objects(obj) -> list:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` without a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank; ``obj`` without a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


WAIT_TIMEOUT_S = 7 * 24 * 3600.0
"""how long ranks wait for rank 0's own work (:func:`on_main`): as long as it takes (a rank that
dies is noticed by torchrun, which stops the run)"""

_wait_group = None


def on_main(fn, *args):
    """``fn(*args)`` on rank 0 while the other ranks wait for it (on a process group of their own,
    whose timeout is :data:`WAIT_TIMEOUT_S`: rank 0's work may outlast a collective's timeout);
    returns rank 0's result on every rank. Just ``fn(*args)`` without a process group."""
    global _wait_group
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return fn(*args)
    if _wait_group is None or _wait_group[0] is not dist.group.WORLD:  # one per default group
        _wait_group = (dist.group.WORLD, dist.new_group(backend="gloo", timeout=timedelta(seconds=WAIT_TIMEOUT_S)))
    result = fn(*args) if dist.get_rank() == 0 else None
    box = [result]
    dist.broadcast_object_list(box, src=0, group=_wait_group[1])
    return box[0]


def is_main_process() -> bool:
    """Whether this process is rank 0 (or the only one)."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier() -> None:
    """Wait for every rank (a no-op without a process group)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
