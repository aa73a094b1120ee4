"""The three colours: rewrite family of a rule, tag of an e-node, polarity of an agent.

Tags on an e-node form a lattice (a set of colours, stored as a bit mask), so
replicas merge them with bitwise OR: commutative, associative, idempotent, and
never last-writer-wins.
"""

import enum


class Colour(str, enum.Enum):
    RED = "RED"  # forward, associative/commutative rewrites
    BLUE = "BLUE"  # backward, distributive rewrites (distribute and factor)
    GREEN = "GREEN"  # identities and verification

    @property
    def bit(self) -> int:
        """This colour's bit in a tag mask."""
        return _BITS[self]

    @property
    def polarity(self) -> str:
        """The deployment guides' polarity of this colour (guide 000's spin.toml)."""
        return _POLARITIES[self]


# The fixed order: declaration order. Masks, sorting and "dominant colour" use it.
COLOURS: tuple[Colour, ...] = tuple(Colour)
_BITS = {colour: 1 << index for index, colour in enumerate(COLOURS)}
ALL_COLOURS_MASK = (1 << len(COLOURS)) - 1
_POLARITIES = {Colour.RED: "positive", Colour.BLUE: "negative", Colour.GREEN: "neutral"}


def mask_of(colours) -> int:
    """Bit mask of an iterable of colours."""
    mask = 0
    for colour in colours:
        mask |= Colour(colour).bit
    return mask


def colours_of(mask: int) -> tuple[Colour, ...]:
    """The colours in a tag mask, in the fixed order."""
    return tuple(colour for colour in COLOURS if mask & colour.bit)


def dominant(mask: int) -> Colour | None:
    """The last colour of a mask in the fixed order (GREEN > BLUE > RED): one colour to display."""
    present = colours_of(mask)
    return present[-1] if present else None
