"""Transformers with ``explain()``: an output adapter for language models and per-token relevance.

``explain()`` explains a ``(batch, classes)`` output. A causal language model returns logits for every
position, and a Hugging Face model returns a ``ModelOutput``; :class:`LogitsAt` picks one position's
logits (``target`` is then the next-token id) and takes ``inputs_embeds``, so relevance arrives at the
embeddings and :func:`explain_tokens` sums it over the embedding into one number per token.
See ``docs/transformers.md``.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from .errors import ComposerError


def _logits(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        logits = output[0]
    if not isinstance(logits, torch.Tensor):
        raise ComposerError(f"the model returned {type(output).__name__}, which has no logits tensor")
    return logits


class LogitsAt(torch.nn.Module):
    """A model's logits as ``(batch, classes)``: of the token at ``position`` for a sequence model, as they
    are for a classifier (``position=None``); a Hugging Face ``ModelOutput`` is reduced to its ``logits``.

    With ``embeddings=True`` (the default for a ``transformers`` text model, whose input embeddings are a
    lookup table) the adapter passes its input as ``inputs_embeds``, ``(batch, tokens, hidden)``, instead of
    ids, so relevance can reach the input; an image model gets its pixels as they are.

    Example
    -------
    >>> lm = torch.nn.Sequential(torch.nn.Linear(4, 7))          # (batch, tokens, 4) -> (batch, tokens, 7)
    >>> LogitsAt(lm, position=-1)(torch.randn(2, 5, 4)).shape   # the logits of the last token
    torch.Size([2, 7])
    """

    def __init__(self, model: torch.nn.Module, position: Optional[int] = -1, embeddings: Optional[bool] = None,
                 **model_kwargs: Any):
        super().__init__()
        if position is not None and (isinstance(position, bool) or not isinstance(position, int)):
            raise ComposerError(f"position must be an int or None, got {position!r}")
        self.model = model
        self.position = position
        self.embeddings = _takes_embeddings(model) if embeddings is None else embeddings
        self.model_kwargs = model_kwargs

    def forward(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        kwargs = {**self.model_kwargs, **kwargs}
        output = self.model(inputs_embeds=x, **kwargs) if self.embeddings else self.model(x, **kwargs)
        logits = _logits(output)
        if self.position is None:
            return logits
        if logits.dim() != 3:
            raise ComposerError(f"position={self.position} needs logits of shape (batch, tokens, vocabulary), "
                                f"got {tuple(logits.shape)}; use position=None for a classifier")
        if not -logits.shape[1] <= self.position < logits.shape[1]:
            raise ComposerError(f"position {self.position} is outside the {logits.shape[1]} tokens")
        return logits[:, self.position]


def _takes_embeddings(model: torch.nn.Module) -> bool:
    """A ``transformers`` text model (its input embeddings are a lookup table): it is given ``inputs_embeds``."""
    if not any(c.__module__.startswith("transformers.") for c in type(model).__mro__):
        return False
    get = getattr(model, "get_input_embeddings", None)
    try:
        return isinstance(get() if get is not None else None, torch.nn.Embedding)
    except (NotImplementedError, AttributeError):
        return False


def embed(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """The input embeddings of token ids (``model.get_input_embeddings()``), detached.

    Example
    -------
    >>> class Tiny(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__(); self.emb = torch.nn.Embedding(10, 4)
    ...     def get_input_embeddings(self):
    ...         return self.emb
    >>> embed(Tiny(), torch.tensor([[1, 2, 3]])).shape
    torch.Size([1, 3, 4])
    """
    get = getattr(model, "get_input_embeddings", None)
    if get is None:
        raise ComposerError(f"{type(model).__name__} has no get_input_embeddings(): pass embeddings yourself")
    with torch.no_grad():
        return get()(input_ids).detach()


def explain_tokens(model: torch.nn.Module, input_ids: torch.Tensor, method: Any = "attnlrp", target: Any = None,
                   position: int = -1, **kwargs: Any) -> torch.Tensor:
    """Relevance per token, ``(batch, tokens)``: ``explain()`` of the logits at ``position`` (``target``: the
    next-token id, or None for the arg-max), summed over each token's embedding.

    Example
    -------
    >>> class Tiny(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__(); self.emb = torch.nn.Embedding(10, 4); self.head = torch.nn.Linear(4, 10)
    ...     def get_input_embeddings(self):
    ...         return self.emb
    ...     def forward(self, inputs_embeds):
    ...         return self.head(inputs_embeds.cumsum(1))
    >>> explain_tokens(Tiny(), torch.tensor([[1, 2, 3]]), "gradient_x_input", target=4).shape
    torch.Size([1, 3])
    """
    from .explain import explain

    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
        raise ComposerError("input_ids must be an integer tensor of shape (batch, tokens)")
    adapter = LogitsAt(model, position=position, embeddings=True)
    relevance = explain(adapter, embed(model, input_ids), method, target=target, **kwargs)
    return relevance.sum(-1)


def load_pretrained(path: Any):
    """``(model, tokenizer, position)`` from a local Hugging Face model folder (nothing is downloaded): a
    sequence classifier (``position=None``) when the folder's configuration names one, else a causal
    language model (``position=-1``). Weights are read as the folder stores them (``from_pretrained``).

    Example
    -------
    >>> load_pretrained("/no/such/folder")
    Traceback (most recent call last):
    composer.errors.ComposerError: /no/such/folder is not a Hugging Face model folder (no config.json)
    """
    from pathlib import Path

    from .extras import optional_import

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ComposerError(f"{folder} is not a Hugging Face model folder (no config.json)")
    transformers = optional_import("transformers", "explaining a Hugging Face model")
    config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    classifier = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    auto = transformers.AutoModelForSequenceClassification if classifier else transformers.AutoModelForCausalLM
    model = auto.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model, tokenizer, None if classifier else -1


def explain_text(path: Any, text: str, method: Any = "attnlrp", target: Any = None, **kwargs: Any):
    """``(tokens, relevance, target)`` for ``text`` with the model in a local Hugging Face folder: the relevance of
    each token (``(tokens,)``) for ``target`` — a class of a classifier or the next token of a language model
    (an id, a token string, or None for the arg-max) — and the target id explained.

    Example
    -------
    >>> explain_text("/no/such/folder", "hello")
    Traceback (most recent call last):
    composer.errors.ComposerError: /no/such/folder is not a Hugging Face model folder (no config.json)
    """
    model, tokenizer, position = load_pretrained(path)
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    if ids.shape[1] == 0:
        raise ComposerError("the text has no tokens")
    if isinstance(target, str) and not target.lstrip("-").isdigit():
        token_id = tokenizer.convert_tokens_to_ids(target)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ComposerError(f"{target!r} is not a token of the model's vocabulary")
        target = token_id
    elif isinstance(target, str):
        target = int(target)
    if target is None:
        with torch.no_grad():
            target = int(LogitsAt(model, position=position, embeddings=True)(embed(model, ids)).argmax(-1)[0])
    relevance = explain_tokens(model, ids, method, target=target, position=position, **kwargs)[0]
    tokens = [tokenizer.decode([i]) for i in ids[0].tolist()]
    return tokens, relevance, target
