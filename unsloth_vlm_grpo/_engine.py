"""The patch engine: declared patches, applied with wrapt to live targets, tracked in one registry.

A patch names its targets without importing them. ``apply`` wraps every target whose module is already
imported and registers wrapt post-import hooks for the others, so ``patch()`` never changes import order
(Unsloth wants to be imported before trl and transformers). Unsloth replaces ``trl.GRPOTrainer`` with a
class it generates at run time; the engine wraps the function that does it (``FOLLOW_UNSLOTH_TRAINER``) and
``refresh`` wraps the new class.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType

import wrapt

from ._versions import UnsupportedVersionError, check_stack, unsupported_version_message

logger = logging.getLogger("unsloth_vlm_grpo")

_MISSING = object()
GRPO_TRAINER_MODULE = "trl.trainer.grpo_trainer"
# The module Unsloth generates its copy of the trainer into (executed from a file in its compile cache).
UNSLOTH_GRPO_TRAINER_MODULE = "UnslothGRPOTrainer"


@dataclass(frozen=True)
class Site:
    """One resolved place to wrap: ``owner.attribute``, reported and fingerprinted as ``label``."""

    owner: object
    attribute: str
    label: str
    fingerprint_source: object
    # Set on the owner just before wrapping (only once the fingerprint is verified): the unwrapped value.
    unwrapped_value: object = _MISSING


def fingerprint(obj: object) -> str:
    """A short hash of the source text of ``obj`` (a function, method or class)."""
    source = inspect.getsource(inspect.unwrap(getattr(obj, "__func__", obj)))
    return hashlib.sha256(source.encode()).hexdigest()[:16]


class TargetMissingError(AttributeError):
    """A patch target no longer exists in the installed package; ``label`` names it."""

    def __init__(self, label: str, reason: str):
        super().__init__(f"{label} {reason}")
        self.label = label


def defining_class(cls: type, attribute: str) -> type | None:
    return next((klass for klass in cls.__mro__ if attribute in vars(klass)), None)


def innermost(value: object) -> object:
    """``value`` with every wrapt wrapper around it taken off."""
    while isinstance(value, wrapt.FunctionWrapper):
        value = value.__wrapped__
    return value


def is_unsloth_generated(obj: object) -> bool:
    """Whether a class or function comes from the trainer module Unsloth generates, not from TRL."""
    return getattr(obj, "__module__", None) == UNSLOTH_GRPO_TRAINER_MODULE


@dataclass(frozen=True)
class FunctionTarget:
    """A module-level function, or an attribute of a class defined in a module: ``module`` + ``qualname``.

    ``fingerprint_of`` names another attribute path in the same module whose source is what the patch
    depends on (e.g. an autograd Function's ``forward`` when the patch wraps its inherited ``apply``).
    """

    module: str
    qualname: str
    fingerprint_of: str | None = None

    @property
    def modules(self) -> tuple[str, ...]:
        return (self.module,)

    def resolve(self) -> list[Site]:
        module = sys.modules.get(self.module)
        if module is None:
            return []
        *path, attribute = self.qualname.split(".")
        try:
            owner = module
            for name in path:
                owner = getattr(owner, name)
            getattr(owner, attribute)
            source = owner if self.fingerprint_of is None else module
            for name in (self.fingerprint_of or attribute).split("."):
                source = getattr(source, name)
        except AttributeError as error:
            if getattr(getattr(module, "__spec__", None), "_initializing", False):
                return []  # still importing: another target's import hook ran meanwhile; wrapped when done
            raise TargetMissingError(f"{self.module}.{self.qualname}", f"no longer exists ({error})") from error
        return [Site(owner, attribute, f"{self.module}.{self.qualname}", source)]


def live_grpo_trainer_classes() -> list[type]:
    """Every GRPO trainer class reachable now: TRL's own and, once Unsloth has run, the class it generated.

    Only names already bound are read, so this never triggers trl's lazy imports.
    """
    found: list[type] = []
    for module_name in ("trl", "trl.trainer", GRPO_TRAINER_MODULE):
        module = sys.modules.get(module_name)
        cls = vars(module).get("GRPOTrainer") if module is not None else None
        if isinstance(cls, type) and cls not in found:
            found.append(cls)
    return found


@dataclass(frozen=True)
class GRPOTrainerMethod:
    """A method of every live GRPO trainer class, wrapped on the class in its MRO that defines it.

    ``classes`` narrows it to TRL's class (``"trl"``) or to the class Unsloth generates (``"unsloth"``). The
    engine follows Unsloth's regeneration of the trainer by itself (``FOLLOW_UNSLOTH_TRAINER``).
    """

    name: str
    classes: str = "all"

    @property
    def modules(self) -> tuple[str, ...]:
        return (GRPO_TRAINER_MODULE,)

    def resolve(self) -> list[Site]:
        sites = []
        for cls in live_grpo_trainer_classes():
            if self.classes != "all" and is_unsloth_generated(cls) != (self.classes == "unsloth"):
                continue
            owner = defining_class(cls, self.name)
            if owner is None or owner.__module__.startswith("transformers"):
                raise TargetMissingError(f"{cls.__module__}.{cls.__qualname__}", f"has no method {self.name}")
            label = f"{owner.__module__}.{owner.__qualname__}.{self.name}"
            if all(site.label != label for site in sites):
                sites.append(Site(owner, self.name, label, getattr(owner, self.name)))
        return sites


@dataclass(frozen=True)
class UnslothModuleFunction:
    """A TRL module-level function as the module Unsloth generates holds it (``from trl... import name``).

    The generated module binds the function when Unsloth generates it. Generated after ``patch()``, it
    binds TRL's attribute, which is then our wrapper: when applied, that copy is put back to the function it
    wraps and wrapped on its own, so the module carries exactly one wrapper and ``unpatch()`` restores it.
    Generated before, it binds the plain function, which a wrapper on TRL's module would never reach.
    """

    name: str

    @property
    def modules(self) -> tuple[str, ...]:
        return (GRPO_TRAINER_MODULE,)

    def resolve(self) -> list[Site]:
        generated = sys.modules.get(UNSLOTH_GRPO_TRAINER_MODULE)
        if generated is None:
            return []
        label = f"{UNSLOTH_GRPO_TRAINER_MODULE}.{self.name}"
        if self.name not in vars(generated):
            raise TargetMissingError(label, "no longer exists (Unsloth's generated module does not bind it)")
        bound = vars(generated)[self.name]
        trl_module = sys.modules.get(GRPO_TRAINER_MODULE)
        plain = innermost(bound)
        # A wrapper copied from TRL's module, by this patch() or an earlier one since undone.
        copied_wrapper = trl_module is not None and plain is innermost(vars(trl_module).get(self.name))
        if copied_wrapper and plain is not bound:
            return [Site(generated, self.name, label, plain, unwrapped_value=plain)]
        return [Site(generated, self.name, label, bound)]


Wrapper = Callable[[Callable, object, tuple, dict], object]


@dataclass(frozen=True)
class Patch:
    """One compatibility shim. Every field is part of the declaration the issue tracker asks for.

    name: short identifier. targets: what gets wrapped (``watches``: what is only fingerprinted). wrapper: a wrapt wrapper
    ``(wrapped, instance, args, kwargs)``. verified: package versions the wrapper was verified against (named
    when a changed target is refused or skipped).
    fingerprints: target label -> hash of its source at verification time. reason: the failure it fixes.
    remove_when: the upstream change that makes it unnecessary. on_remove: undoes side effects the
    wrapper left on objects (hooks), called by ``unpatch()``.
    """

    name: str
    targets: tuple
    wrapper: Wrapper
    verified: dict[str, str]
    fingerprints: dict[str, str]
    reason: str
    remove_when: str
    on_remove: Callable[[], None] | None = None
    # Targets whose source the patch relies on without wrapping them (fingerprinted, never wrapped).
    watches: tuple = ()
    # Applied only when named in patch(include=...): not yet measured to pay by default.
    opt_in: bool = False

    def __post_init__(self):
        object.__setattr__(self, "fingerprints", MappingProxyType(dict(self.fingerprints)))

    def sites(self) -> list[Site]:
        return [site for target in self.targets for site in target.resolve()]

    def watched_sites(self) -> list[Site]:
        return [site for target in self.watches for site in target.resolve()]

    def modules(self) -> set[str]:
        return {module for target in (*self.targets, *self.watches) for module in target.modules}


@dataclass(frozen=True)
class ReportEntry:
    patch: str
    target: str
    # "applied", "watched", "pending", "skipped", "excluded" (patch(exclude=...)) or "opt-in" (not in
    # patch(include=...)); a plan() says "apply" for "applied"
    status: str
    detail: str = ""

    def __str__(self) -> str:
        suffix = f" ({self.detail})" if self.detail else ""
        return f"{self.status:8} {self.patch:32} {self.target}{suffix}"


@dataclass(frozen=True)
class PatchReport:
    """What ``patch()`` did, one entry per patch and target."""

    entries: tuple[ReportEntry, ...] = ()

    def _with(self, status: str) -> list[ReportEntry]:
        return [entry for entry in self.entries if entry.status == status]

    @property
    def applied(self) -> list[ReportEntry]:
        return self._with("applied")

    @property
    def skipped(self) -> list[ReportEntry]:
        return self._with("skipped")

    @property
    def pending(self) -> list[ReportEntry]:
        return self._with("pending")

    @property
    def excluded(self) -> list[ReportEntry]:
        return self._with("excluded")

    @property
    def opt_in(self) -> list[ReportEntry]:
        """Opt-in patches left out (not named in ``patch(include=...)``)."""
        return self._with("opt-in")

    def __str__(self) -> str:
        return "\n".join(str(entry) for entry in self.entries) or "(no patches)"


@dataclass
class _Applied:
    patch: Patch
    site: Site
    original: object


@dataclass
class _Registry:
    """All state the library keeps: which patches are active and what they replaced."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    patches: tuple[Patch, ...] = ()
    active: bool = False
    strict: bool = True
    left_out: tuple[ReportEntry, ...] = ()  # what patch(exclude=..., include=...) left out, as reported
    # (id(owner), attribute, patch name) -> what that patch replaced, in the order applied.
    applied: dict[tuple[int, str, str], _Applied] = field(default_factory=dict)
    hooked_modules: set[str] = field(default_factory=set)


REGISTRY = _Registry()


def _fingerprint_problem(patch: Patch, site: Site) -> str | None:
    """Why ``site`` cannot be verified for ``patch`` (its source changed), or None when it can."""
    expected = patch.fingerprints.get(site.label)
    found = fingerprint(site.fingerprint_source)
    if expected == found:
        return None
    versions = ", ".join(f"{name} {version}" for name, version in patch.verified.items())
    return f"source fingerprint {found} differs from verified {expected or 'none recorded'} (verified with {versions})"


def _refuse_or_skip(patch: Patch, site: Site, problem: str) -> ReportEntry:
    if REGISTRY.strict:
        raise UnsupportedVersionError(
            f"patch {patch.name!r} cannot verify its target {site.label}: {problem}. The installed "
            "package differs from the verified one; call patch(strict=False) to skip this patch."
        )
    logger.warning("unsloth_vlm_grpo: skipping patch %s on %s: %s", patch.name, site.label, problem)
    return ReportEntry(patch.name, site.label, "skipped", problem)


def _apply_site(patch: Patch, site: Site) -> ReportEntry:
    key = (id(site.owner), site.attribute, patch.name)
    record = REGISTRY.applied.get(key)
    if record is not None and record.site.owner is site.owner:
        return ReportEntry(patch.name, site.label, "applied", "already")
    problem = _fingerprint_problem(patch, site)
    if problem is not None:
        return _refuse_or_skip(patch, site, problem)
    if site.unwrapped_value is not _MISSING and not _wrapped_by_us(site):
        setattr(site.owner, site.attribute, site.unwrapped_value)
    original = vars(site.owner).get(site.attribute, _MISSING)
    # Several patches may wrap one site: wrapt stacks the wrappers and remove() unwinds them in reverse.
    wrapt.wrap_function_wrapper(site.owner, site.attribute, patch.wrapper)
    REGISTRY.applied[key] = _Applied(patch, site, original)
    logger.debug("unsloth_vlm_grpo: applied %s to %s", patch.name, site.label)
    return ReportEntry(patch.name, site.label, "applied")


def _watch_site(patch: Patch, site: Site) -> ReportEntry:
    problem = _fingerprint_problem(patch, site)
    return ReportEntry(patch.name, site.label, "watched") if problem is None else _refuse_or_skip(patch, site, problem)


def _wrapped_by_us(site: Site) -> bool:
    return any(
        record.site.owner is site.owner and record.site.attribute == site.attribute
        for record in REGISTRY.applied.values()
    )


def _resolved(patch: Patch, strict: bool) -> tuple[list[Site], list[Site]] | ReportEntry:
    """(sites to wrap, sites to watch), or the entry saying why the patch is skipped."""
    try:
        return patch.sites(), patch.watched_sites()
    except TargetMissingError as error:
        if strict:
            raise UnsupportedVersionError(
                f"patch {patch.name!r} cannot find its target: {error}. Call patch(strict=False) to skip it."
            ) from error
        logger.warning("unsloth_vlm_grpo: skipping patch %s: %s", patch.name, error)
        return ReportEntry(patch.name, error.label, "skipped", "target missing")


def _pending(patch: Patch) -> ReportEntry:
    return ReportEntry(patch.name, ", ".join(sorted(patch.modules())), "pending", "applied when imported")


def _apply_all() -> list[ReportEntry]:
    entries = list(REGISTRY.left_out)
    for patch in (FOLLOW_UNSLOTH_TRAINER, *REGISTRY.patches):
        resolved = _resolved(patch, REGISTRY.strict)
        if isinstance(resolved, ReportEntry):
            entries.append(resolved)
            continue
        sites, watched = resolved
        if not sites and not watched:
            entries.append(_pending(patch))
        entries += [_apply_site(patch, site) for site in sites] + [_watch_site(patch, site) for site in watched]
    return entries


def plan(patches: tuple[Patch, ...]) -> list[ReportEntry]:
    """What ``patch(strict=False)`` would do now, without changing anything: "apply", "watched", "pending" or
    "skipped" per patch and site (for ``doctor``)."""
    entries = []
    for patch in (FOLLOW_UNSLOTH_TRAINER, *patches):
        if patch.opt_in:
            entries.append(ReportEntry(patch.name, "-", "opt-in", "applied with patch(include=...)"))
            continue
        resolved = _resolved(patch, strict=False)
        if isinstance(resolved, ReportEntry):
            entries.append(resolved)
            continue
        sites, watched = resolved
        if not sites and not watched:
            entries.append(_pending(patch))
        for site, status in [(site, "apply") for site in sites] + [(site, "watched") for site in watched]:
            problem = _fingerprint_problem(patch, site)
            entries.append(ReportEntry(patch.name, site.label, status if problem is None else "skipped", problem or ""))
    return entries


def _on_import(_module: object) -> None:
    refresh()


def refresh() -> None:
    """Wrap targets that appeared since the last call (a module imported, a class generated by Unsloth)."""
    with REGISTRY.lock:
        if REGISTRY.active:
            _apply_all()


def select(patches: tuple[Patch, ...], exclude=(), include=()) -> tuple[Patch, ...]:
    """The patches to apply: every default one not in ``exclude``, and the opt-in ones named in ``include``.

    An unknown name raises ``ValueError`` listing the known ones."""
    exclude, include = _names(exclude), _names(include)
    names = [patch.name for patch in patches]
    for option, given in (("exclude", exclude), ("include", include)):
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ValueError(f"patch({option}=...): unknown patch name(s) {unknown}; the patches are {names}")
    return tuple(
        patch for patch in patches if patch.name not in exclude and (not patch.opt_in or patch.name in include)
    )


def _names(given) -> tuple[str, ...]:
    return (given,) if isinstance(given, str) else tuple(given)


def apply(patches: tuple[Patch, ...], strict: bool, exclude=(), include=()) -> PatchReport:
    exclude, include = _names(exclude), _names(include)
    with REGISTRY.lock:
        chosen = select(patches, exclude, include)
        if REGISTRY.active and (chosen != REGISTRY.patches or strict != REGISTRY.strict):
            remove()  # patch() again with other options: start from the unpatched state
        failed = [check for check in check_stack() if not check.ok]
        if failed:
            if strict:
                raise UnsupportedVersionError(unsupported_version_message(failed))
            logger.warning("%s", unsupported_version_message(failed))
        REGISTRY.patches, REGISTRY.strict, REGISTRY.active = chosen, strict, True
        REGISTRY.left_out = tuple(
            ReportEntry(patch.name, "-", "opt-in", "applied with patch(include=...)")
            if patch.opt_in and patch.name not in exclude
            else ReportEntry(patch.name, "-", "excluded", "patch(exclude=...)")
            for patch in patches
            if patch not in chosen
        )
        try:
            entries = _apply_all()
        except Exception:
            remove()
            raise
        modules = {m for patch in (FOLLOW_UNSLOTH_TRAINER, *chosen) for m in patch.modules()}
        for module in sorted(modules - REGISTRY.hooked_modules):
            # wrapt keeps post-import hooks for the life of the process; ours do nothing while inactive.
            wrapt.register_post_import_hook(_on_import, module)
            REGISTRY.hooked_modules.add(module)
        return PatchReport(tuple(entries))


def remove() -> None:
    with REGISTRY.lock:
        for record in reversed(list(REGISTRY.applied.values())):
            if record.original is _MISSING:
                delattr(record.site.owner, record.site.attribute)
            else:
                setattr(record.site.owner, record.site.attribute, record.original)
        for patch in REGISTRY.patches:
            if patch.on_remove is not None:
                patch.on_remove()
        REGISTRY.applied.clear()
        REGISTRY.active = False


def is_active() -> bool:
    return REGISTRY.active


def applied_sites() -> Iterator[tuple[str, str]]:
    """(patch name, target label) for every wrapped target."""
    for record in list(REGISTRY.applied.values()):
        yield record.patch.name, record.site.label


def _refresh_after_regeneration(wrapped, _instance, args, kwargs):
    result = wrapped(*args, **kwargs)
    refresh()
    return result


# Engine plumbing, applied with every patch() and not excludable: Unsloth rewrites ``trl.GRPOTrainer``'s source,
# execs it as a new module (no import hook sees it) and rebinds ``trl.GRPOTrainer`` to the result, which is not
# a subclass of TRL's class. Wrapping the function that does the rebinding lets GRPOTrainerMethod targets follow
# the generated class, whether ``patch()`` comes before or after ``import unsloth``. Needed as long as Unsloth
# generates trainer classes without a hook that runs after it (unsloth 2026.10.9).
FOLLOW_UNSLOTH_TRAINER = Patch(
    name="follow_unsloth_trainer",
    targets=(FunctionTarget("unsloth.models.rl", "_patch_trl_rl_trainers"),),
    wrapper=_refresh_after_regeneration,
    verified={"unsloth": "2026.10.9"},
    fingerprints={"unsloth.models.rl._patch_trl_rl_trainers": "37641ac968d223ff"},
    reason="Unsloth replaces trl.GRPOTrainer with a generated class that earlier wrappers do not reach.",
    remove_when="Unsloth patches TRL by subclassing, or calls a documented hook after generating a trainer.",
)
