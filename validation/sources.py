"""The source documents the validation suite checks, cited by what they are.

The documents are not part of the repository; each entry says what the document is,
who wrote it, and where a reader can find it, so a claim in the report can be traced.
"""

__all__ = ["SOURCES", "cite"]

#: key -> (short citation, full description)
SOURCES = {
    "forum": (
        "the forum question “Did I understand the usage of Gumbel-Softmax reparametrization correctly?”",
        "A question posted on a public question-and-answer forum (author not named) proposing a Gumbel-Softmax "
        "gradient for a mixture-of-experts bound.",
    ),
    "xu_slides": (
        "R. Y. D. Xu, “Re-parameterization and Gumbel-max Trick”, lecture slides (UTS, 2018)",
        "Lecture slides by Richard Yi Da Xu, University of Technology Sydney, dated 6 July 2018.",
    ),
    "rebar_report": (
        "M. Andrzejczuk, P. Bielecki, M. Orłowski, “Project REBAR”, student project report",
        "A student project report reproducing REBAR (Tucker et al. 2017) on a Gaussian-mixture example.",
    ),
    "sobolev_slides": (
        "A. Sobolev, “Discrete Latent Variables”, lecture slides (Samsung AI Center)",
        "Lecture slides by Art Sobolev, Samsung AI Center, surveying relaxations and variance reduction.",
    ),
}


def cite(key):
    """The short citation of source ``key`` (a key of :data:`SOURCES`)."""
    if key not in SOURCES:
        raise ValueError(f"key must be one of {sorted(SOURCES)}; got {key!r}")
    return SOURCES[key][0]
