"""Record-level noise: typos, case and white-space noise, nicknames, e-mail and phone damage.

Every function takes a column (numpy object array), a boolean mask of the rows to damage and a
random generator, and returns a new column; unmasked rows are returned unchanged. The masks
come from :class:`Noise`, which scales every base probability by the global noise level.
"""

from __future__ import annotations

import numpy as np

from udp_spark.generate import strops as so
from udp_spark.generate.pools import INVALID_PHONES, PLACEHOLDER_EMAILS

MAX_NOISE = 10.0


class Noise:
    """Scales noise probabilities by a global level and draws masks from one generator.

    ``level`` 0 means clean data, 1 the default realistic level, 2 twice as noisy. A base
    probability ``p`` becomes ``1 - (1 - p) ** level``: about ``level * p`` for small ``p``
    and never above 1, so high levels saturate instead of overflowing.
    """

    def __init__(self, level: float, rng: np.random.Generator) -> None:
        self.level = float(min(max(level, 0.0), MAX_NOISE))
        self.rng = rng

    def p(self, base: float) -> float:
        """Effective probability for a base probability at the current level."""
        if self.level == 0.0 or base <= 0.0:
            return 0.0
        return float(1.0 - (1.0 - min(base, 1.0)) ** self.level)

    def mask(self, n: int, base: float | np.ndarray) -> np.ndarray:
        """Boolean mask of ``n`` rows, each true with the scaled probability of ``base``.

        ``base`` may be an array (a per-row base probability).
        """
        u = self.rng.random(n)
        if isinstance(base, np.ndarray):
            if self.level == 0.0:
                return np.zeros(n, dtype=bool)
            p = 1.0 - (1.0 - np.clip(base, 0.0, 1.0)) ** self.level
            return u < p
        return u < self.p(base)


_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    pos = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}
    out: dict[str, str] = {}
    for c, (r, i) in pos.items():
        near = []
        for dr, di in ((0, -1), (0, 1), (-1, 0), (-1, 1), (1, -1), (1, 0)):
            rr, ii = r + dr, i + di
            if 0 <= rr < len(_ROWS) and 0 <= ii < len(_ROWS[rr]):
                near.append(_ROWS[rr][ii])
        out[c] = "".join(near)
    return out


NEIGHBOURS = _keyboard_neighbours()
_ACCENT_DROP = {c: so.strip_accents(c) for c in "áàâäãéèêëíìîïóòôöõúùûüñçÁÉÍÓÚÜÑÇ"}


def _near(c: str, u: float) -> str:
    base = c.lower()
    if base in _ACCENT_DROP:
        return _ACCENT_DROP[base]
    near = NEIGHBOURS.get(base)
    if not near:
        return c
    out = near[min(int(u * len(near)), len(near) - 1)]
    return out.upper() if c.isupper() else out


def typo(s: str, op: int, u1: float, u2: float) -> str:
    """Apply one keyboard typo to ``s``.

    ``op``: 0 delete, 1 insert a neighbouring key, 2 substitute a neighbouring key,
    3 transpose two letters, 4 double a letter. ``u1`` picks the position (the first letter
    is hit less often, as in real data), ``u2`` the replacement key.
    """
    n = len(s)
    if n == 0:
        return s
    if n == 1:
        return s + s if op != 2 else _near(s, u2)
    i = 0 if u1 < 0.08 else 1 + min(int((u1 - 0.08) / 0.92 * (n - 1)), n - 2)
    if op == 3:
        i = min(i, n - 2)
    if op == 3 and s[i] == s[i + 1]:
        op = 2
    if op == 2 and _near(s[i], u2) == s[i]:
        op = 0
    if op == 0:
        return s[:i] + s[i + 1 :]
    if op == 1:
        return s[: i + 1] + _near(s[i], u2) + s[i + 1 :]
    if op == 2:
        return s[:i] + _near(s[i], u2) + s[i + 1 :]
    if op == 3:
        return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
    return s[: i + 1] + s[i] + s[i + 1 :]


_TYPO_OPS = np.array([0, 1, 2, 3, 4])
_TYPO_P = np.array([0.25, 0.15, 0.30, 0.20, 0.10])


def typos(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random keyboard typo in each masked value."""
    k = int(mask.sum())
    ops = rng.choice(_TYPO_OPS, size=k, p=_TYPO_P)
    return so.apply_subset(x, mask, typo, ops, rng.random(k), rng.random(k))


def digit_typo(s: str, op: int, u1: float, d: int) -> str:
    """Damage a phone-like string: 0 drop a digit, 1 swap two adjacent digits, 2 change one."""
    pos = [i for i, c in enumerate(s) if c.isdigit()]
    if len(pos) < 3:
        return s
    j = min(int(u1 * (len(pos) - 1)) + 1, len(pos) - 1)
    i = pos[j]
    if op == 0:
        return s[:i] + s[i + 1 :]
    if op == 1:
        k = pos[j - 1]
        chars = list(s)
        chars[k], chars[i] = chars[i], chars[k]
        return "".join(chars)
    new = str((int(s[i]) + 1 + d % 9) % 10)
    return s[:i] + new + s[i + 1 :]


def digit_typos(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One digit error in each masked value."""
    k = int(mask.sum())
    return so.apply_subset(
        x, mask, digit_typo, rng.integers(0, 3, k), rng.random(k), rng.integers(0, 9, k)
    )


def case_noise(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Masked values become UPPER or lower case."""
    up = rng.random(len(x)) < 0.5
    out = so.where(mask & up, so.upper(x), x)
    return so.where(mask & ~up, so.lower(x), out)


def space_noise(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Masked values get a leading, trailing or doubled inner space."""
    kind = rng.integers(0, 4, len(x))
    out = so.where(mask & (kind == 0), so.cat(" ", x), x)
    out = so.where(mask & (kind == 1), so.cat(x, " "), out)
    doubled = so.replace(x, " ", "  ", max_replacements=1)
    doubled = so.where(doubled == x, so.cat(x, "  "), doubled)
    out = so.where(mask & (kind == 2), doubled, out)
    return so.where(mask & (kind == 3), so.cat("  ", x, " "), out)


def blank(x: np.ndarray, mask: np.ndarray, value: str | None = None) -> np.ndarray:
    """Masked values become missing (``None``) or the given placeholder value."""
    return so.where(mask, value, x)


def pick_nickname(name: str, u: float, table: dict[str, tuple[str, ...]]) -> str:
    """A nickname of ``name`` from ``table`` (``u`` picks which), else the first part of a
    compound name (``José Luis`` -> ``José``), else the name itself."""
    nicks = table.get(name)
    if nicks:
        return nicks[min(int(u * len(nicks)), len(nicks) - 1)]
    for sep in (" ", "-"):
        if sep in name:
            return name.split(sep)[0]
    return name


def nicknames(
    given: np.ndarray,
    language: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    table: dict[tuple[str, str], tuple[str, ...]],
) -> np.ndarray:
    """Replace masked given names by a nickname in the person's language."""
    by_lang: dict[str, dict[str, tuple[str, ...]]] = {}
    for (lang, name), nicks in table.items():
        by_lang.setdefault(lang, {})[name] = nicks
    out = given.copy()
    u = rng.random(len(given))
    for lang in sorted(by_lang):
        m = mask & (language == lang)
        tab = by_lang[lang]
        out = so.apply_subset(out, m, lambda v, uu, t=tab: pick_nickname(v, uu, t), u[m])
    return out


def initial(x: np.ndarray, with_dot: np.ndarray) -> np.ndarray:
    """``John`` -> ``J.`` (or ``J`` where ``with_dot`` is false)."""
    first = so.substr(x, 0, 1)
    return so.where(with_dot, so.cat(first, "."), first)


# -- e-mail --------------------------------------------------------------------------------

DOMAIN_TYPOS = {
    "gmail.com": ("gmial.com", "gmai.com", "gmail.co", "gmail.con", "gnail.com", "gmaill.com"),
    "yahoo.com": ("yahooo.com", "yaho.com", "yahoo.co"),
    "hotmail.com": ("hotmial.com", "hotmal.com", "hotmail.co", "hotmai.com"),
    "outlook.com": ("outlok.com", "outloo.com"),
    "hotmail.co.uk": ("hotmail.co", "hotmial.co.uk", "hotmail.uk"),
    "gmx.de": ("gmx.d", "gmx.com", "gxm.de"),
    "web.de": ("wed.de", "web.com", "we.de"),
    "t-online.de": ("tonline.de", "t-onlin.de"),
    "orange.fr": ("orange.com", "ornage.fr"),
    "icloud.com": ("icoud.com", "iclould.com"),
}


def _split_email(e: str) -> tuple[str, str]:
    local, _, domain = e.partition("@")
    return local, domain


def email_typo(e: str, op: int, u1: float, u2: float) -> str:
    """A typo in the local part (``op`` < 3) or a misspelt well-known domain."""
    local, domain = _split_email(e)
    if op >= 3 and domain in DOMAIN_TYPOS:
        alts = DOMAIN_TYPOS[domain]
        return local + "@" + alts[min(int(u2 * len(alts)), len(alts) - 1)]
    return typo(local, int(op) % 5, u1, u2) + "@" + domain


def email_typos(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One typo (local part or domain) in each masked address."""
    k = int(mask.sum())
    return so.apply_subset(x, mask, email_typo, rng.integers(0, 5, k), rng.random(k), rng.random(k))


def gmail_variant(e: str, op: int, u: float, tag: str) -> str:
    """Same Gmail mailbox, different spelling: dots removed/added, ``+tag``, googlemail."""
    local, domain = _split_email(e)
    if domain not in ("gmail.com", "googlemail.com"):
        return e
    if op == 0:
        return local.replace(".", "") + "@" + domain
    if op == 1 and len(local) > 2:
        i = 1 + int(u * (len(local) - 2))
        if local[i - 1] != "." and local[i] != ".":
            return local[:i] + "." + local[i:] + "@" + domain
        return local + "@" + domain
    if op == 2:
        return local + "+" + tag + "@" + domain
    if op == 3:
        return (
            local.replace(".", "").replace("", ".")[1:-1] + "@" + domain
            if len(local) <= 6
            else local + "@" + ("googlemail.com" if domain == "gmail.com" else "gmail.com")
        )
    return local + "@" + domain


def gmail_variants(
    x: np.ndarray, mask: np.ndarray, rng: np.random.Generator, tags: tuple[str, ...]
) -> np.ndarray:
    """Masked Gmail addresses get an equivalent spelling (dots, plus tag, googlemail)."""
    k = int(mask.sum())
    tag_arr = np.array(tags, dtype=object)[rng.integers(0, len(tags), k)]
    return so.apply_subset(x, mask, gmail_variant, rng.integers(0, 4, k), rng.random(k), tag_arr)


def plus_tags(
    x: np.ndarray, mask: np.ndarray, rng: np.random.Generator, tags: tuple[str, ...]
) -> np.ndarray:
    """``john@x.com`` -> ``john+shop@x.com`` on masked rows."""
    tag = np.array(tags, dtype=object)[rng.integers(0, len(tags), len(x))]
    ok = mask & so.contains(x, "@") & ~so.contains(x, "+")
    local = so.replace(x, "@.*$", "", regex=True)
    domain = so.replace(x, "^[^@]*@", "", regex=True)
    return so.where(ok, so.cat(local, "+", tag, "@", domain), x)


def invalid_email(e: str, op: int) -> str:
    """Turn an address into one that no validator accepts."""
    local, domain = _split_email(e)
    forms = (
        local + "@",
        "n/a",
        local + "@@" + domain,
        local + "@" + domain.rsplit(".", 1)[0],
        local + " @" + domain,
        local + "." + domain,
        local + "@" + domain + ".",
        local,
        local + "@" + domain + ",",
        "none",
    )
    return forms[op % len(forms)]


def invalid_emails(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Masked addresses become syntactically invalid."""
    k = int(mask.sum())
    return so.apply_subset(x, mask, invalid_email, rng.integers(0, 10, k))


def placeholder_emails(
    x: np.ndarray, mask: np.ndarray, rng: np.random.Generator, weights: np.ndarray | None = None
) -> np.ndarray:
    """Masked rows get a placeholder address shared by many records."""
    p = weights if weights is not None else np.array([0.4, 0.2, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05])
    vals = np.array(PLACEHOLDER_EMAILS, dtype=object)[
        rng.choice(len(PLACEHOLDER_EMAILS), size=len(x), p=p)
    ]
    return so.where(mask, vals, x)


def invalid_phones(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Masked rows get a junk phone value (``123``, ``0000000000``, ``n/a``...)."""
    p = np.array([0.15, 0.15, 0.3, 0.1, 0.1, 0.1, 0.05, 0.05])
    vals = np.array(INVALID_PHONES, dtype=object)[rng.choice(len(INVALID_PHONES), size=len(x), p=p)]
    return so.where(mask, vals, x)


def phone_extensions(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Append an extension (``x123``, `` ext. 42``) to masked phone numbers."""
    ext = so.int_str(rng.integers(1, 999, len(x)))
    style = rng.integers(0, 3, len(x))
    sep = np.array([" x", " ext. ", " Ext "], dtype=object)[style]
    return so.where(mask, so.cat(x, sep, ext), x)
