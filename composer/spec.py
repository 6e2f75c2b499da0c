"""The YAML schema: pydantic models of a rule spec and of a preset.

Both are strict (unknown keys and wrong types are errors) and frozen.
:func:`~composer.validation.validate_document` turns pydantic's errors into one
:class:`~composer.errors.ComposerError` that names the file, the line and the field path.
``composer schema`` exports :class:`Preset`'s JSON Schema for editors.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Dict, List, Literal, Optional, Tuple, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from .validation import validate_document  # noqa: F401  (documents are validated there, with every parameter)
from .domain import DomainSpec

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"
Position = Literal["first", "last", "middle", "all"]
#: largest index a selector may name (a model has far fewer layers)
MAX_INDEX = 1_000_000
Scalar = Union[bool, int, float, str, None]
ParamValue = Union[Scalar, List[Scalar]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------- rule specs
class ParamSpec(_Strict):
    """One parameter of a rule: its type, default, bounds and meaning."""

    type: Literal["float", "int", "bool", "str", "tensor", "names"] = Field(
        description="float/int/bool/str, tensor (a float, or a torch.Tensor passed from Python), or names "
                    "(a list of strings, e.g. parameter names; 'choices' restricts them)")
    default: Optional[ParamValue] = Field(None, description="value when a preset does not set it")
    required: bool = Field(False, description="a preset must set it (no default)")
    ge: Optional[float] = None
    gt: Optional[float] = None
    le: Optional[float] = None
    lt: Optional[float] = None
    choices: Optional[List[str]] = None
    description: str = ""


class RuleSpec(_Strict):
    """A relevance rule: which hook implements it and with which parameters."""

    name: str = Field(pattern=NAME_PATTERN)
    hook: str = Field(description="a hook class registered in composer.rules, or 'zennit:<Rule>'")
    summary: str
    math: str = Field("", description="the rule's maths (Markdown), shown in the rule reference")
    reference: str = Field("", description="how the rule relates to the TF reference and to textbook LRP")
    aliases: List[str] = Field(default_factory=list, description="other names of the rule (SignXAI's rule_name)")
    applies_to: Literal["layers", "any"] = Field(
        "layers", description="layers: only relevance layers (Linear, Conv); any: any module a selector picks")
    params: Dict[str, ParamSpec] = Field(default_factory=dict)
    fixed: Dict[str, ParamValue] = Field(default_factory=dict, description="hook arguments this rule fixes")
    ordered: List[Tuple[str, str]] = Field(
        default_factory=list, description="pairs [a, b] of parameters with a <= b elementwise (z-box: [low, high])")
    identity: bool = Field(False, description="the rule passes relevance through unchanged (pass); lets the "
                                              "compiler skip it on a ReLU where that equals the gradient")
    form: Literal["relevance", "gradient", "any"] = Field(
        "relevance", description="what the hook passes back: relevance (zennit's and iNNvestigate's LRP, the "
                                 "default), a modified gradient that the input multiplies into relevance at the end "
                                 "(LXT's AttnLRP / CP-LRP form), or any (the plain gradient, meaningful in both); "
                                 "a preset may not mix relevance and gradient rules")
    zero_at_zero_input: bool = Field(
        False, description="the rule gives exactly zero relevance to inputs that are exactly zero (R_in = a * ...); "
                           "lets the compiler skip redundant pass hooks on ReLUs")


# --------------------------------------------------------------------------- presets
class SelectorSpec(_Strict):
    """Which modules a binding applies to; every key given must hold."""

    position: Optional[Position] = Field(
        None, description="by position among the model's relevance layers")
    type: Optional[Union[str, List[str]]] = Field(
        None, description="a family (conv, dense, activation, batchnorm, avgpool, maxpool, sum) or torch class name")
    name: Optional[str] = Field(None, description="exact module name, as in model.named_modules()")
    name_glob: Optional[str] = Field(None, description="fnmatch pattern on the module name")
    name_regex: Optional[str] = Field(None, description="regular expression, matched in full against the name")
    index: Optional[Union[int, Tuple[int, int]]] = Field(
        None, description="index among relevance layers (negative from the end), or an inclusive [start, stop]")
    nth: Optional[Union[int, Tuple[int, int]]] = Field(
        None, description="index among the modules that 'type' selects, in the order the forward pass uses them "
                          "(0 the first, -1 the last), or an inclusive [start, stop]; needs 'type'")

    @model_validator(mode="after")
    def _not_empty(self):
        if not self.model_fields_set:
            raise ValueError("a selector needs at least one key: " + ", ".join(type(self).model_fields))
        if self.nth is not None and self.type is None:
            raise ValueError("'nth' counts the modules of a type: give 'type' too (e.g. {type: conv, nth: 0})")
        return self

    @field_validator("index", "nth", mode="before")
    @classmethod
    def _index_range(cls, value):
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, float) or isinstance(item, bool):
                raise ValueError(f"an index is an integer, got {item!r}")
            if isinstance(item, int) and abs(item) > MAX_INDEX:
                raise ValueError(f"index {item} is out of range (at most {MAX_INDEX} from either end)")
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
            start, stop = value
            if (start >= 0) == (stop >= 0) and start > stop:
                raise ValueError(f"[{start}, {stop}] is empty: the range is inclusive [start, stop] with start <= stop")
        return value

    @field_validator("name_regex")
    @classmethod
    def _regex_compiles(cls, value):
        if value is not None:
            from .saferegex import compile_regex

            compile_regex(value)   # RE2, linear time: no selector can hang on a long module name
        return value


def _selector_kind(value) -> Optional[str]:
    return "word" if isinstance(value, str) else "mapping" if isinstance(value, (dict, SelectorSpec)) else None


#: a position among the relevance layers, or a mapping of selector keys
Selector = Annotated[Union[Annotated[Position, Tag("word")],
                           Annotated[SelectorSpec, Tag("mapping")]],
                     Discriminator(_selector_kind, custom_error_type="selector_type",
                                   custom_error_message="a selector is first, last, middle, all or a mapping")]


class Binding(_Strict):
    """A selector and the rule (with parameters) its modules get."""

    select: Selector = Field(description="first | last | middle | all, or a mapping of selector keys")
    rule: str = Field(pattern=NAME_PATTERN)
    with_: Dict[str, Any] = Field(default_factory=dict, alias="with",
                                  description="rule parameters; '$name' refers to a preset parameter")
    optional: bool = Field(False, description="matching no module of a model is expected (no warning)")


class NamedCall(_Strict):
    """A named attributor or modifier with its parameters."""

    name: str = Field(pattern=NAME_PATTERN)
    with_: Dict[str, Any] = Field(default_factory=dict, alias="with")


TEMPLATE_PATTERN = r"^(?:[A-Za-z0-9]+|\{[a-z_][a-z0-9_]*\})(?:_(?:[A-Za-z0-9]+|\{[a-z_][a-z0-9_]*\}))*$"


class GrammarSpec(_Strict):
    """How a preset appears in SignXAI method names (``lrpsign_epsilon_0_25_std_x_mu_0_5``).

    A *template* is words joined by ``_``; ``{param}`` stands for a number written the SignXAI way
    (``0_25`` = 0.25, ``neg_0_5`` = -0.5) and may be left out of a name (the preset default applies).
    """

    body: Optional[str] = Field(None, pattern=TEMPLATE_PATTERN,
                                description="the preset as a body after a prefix, e.g. epsilon_{epsilon}")
    prefix: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9]+$",
                                  description="the preset as a prefix (it sets the first layer), e.g. lrpsign")
    suffixes: List[str] = Field(default_factory=list, description="templates a prefix accepts after the body, "
                                                                  "e.g. mu_{mu}")
    bounds: Dict[str, Dict[str, float]] = Field(
        default_factory=dict, description="named parameter sets a prefix accepts last, e.g. VGG16ILSVRC: {low, high}")
    examples: List[Dict[str, float]] = Field(
        default_factory=list, description="parameter values the method list shows (besides the defaults)")

    @field_validator("suffixes")
    @classmethod
    def _templates(cls, value):
        for text in value:
            if not re.match(TEMPLATE_PATTERN, text):
                raise ValueError(f"{text!r} is not a name template (words and {{param}} joined by '_')")
        return value

    @model_validator(mode="after")
    def _one_role(self):
        if (self.body is None) == (self.prefix is None):
            raise ValueError("a grammar entry is either a body or a prefix")
        if self.body is not None and (self.suffixes or self.bounds):
            raise ValueError("suffixes and bounds belong to a prefix")
        return self


class Preset(_Strict):
    """A method: layer bindings (LRP), an attributor and output modifiers."""

    name: str = Field(pattern=NAME_PATTERN)
    summary: str = ""
    abstract: bool = Field(False, description="a building block for 'extends', not a method of its own")
    extends: Union[str, List[str]] = Field(default_factory=list, description="presets this one builds on")
    params: Dict[str, Any] = Field(default_factory=dict, description="the method's parameters and defaults")
    layers: List[Binding] = Field(default_factory=list, description="ordered; the first matching binding wins")
    canonizers: List[Union[str, "NamedCall"]] = Field(
        default_factory=list, description="zennit canonizers by name (vgg, resnet, merge_batchnorm) or "
                                          "{name, with} for those with parameters (named_merge_batchnorm, attributes)")
    attributor: Optional[NamedCall] = None
    modifiers: List[NamedCall] = Field(default_factory=list)
    on_unmatched: Literal["warn", "error", "ignore"] = Field(
        "warn", description="what happens when a binding matches no module of a model")
    canonize: Optional[bool] = Field(
        None, description="explain a canonical twin of the model (functional calls as modules, batch norms "
                          "merged, one module per call); default true, inherited through 'extends'")
    grammar: Optional[GrammarSpec] = Field(None, description="how the preset appears in method names")
    on_uncovered: Optional[Literal["error", "warn", "ignore"]] = Field(
        None, description="what happens when an operation between input and output has no rule "
                          "(LRP presets); default error, inherited through 'extends'")
    domain: Optional[DomainSpec] = Field(
        None, description="show maps in another domain: time, frequency or time_frequency (DFT-LRP, "
                          "composer.frequency), as a name or {kind, window, window_width, window_shift, ...}")

    @property
    def parents(self) -> List[str]:
        return [self.extends] if isinstance(self.extends, str) else list(self.extends)


def preset_json_schema() -> dict:
    """The JSON Schema of a preset file, for editors (``composer schema`` prints it).

    Example
    -------
    >>> preset_json_schema()["title"]
    'Preset'
    """
    schema = Preset.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/zennit-composer/composer/schema/preset.schema.json"
    return schema
