"""BigGAN's per-resolution architectures (paper App. B, the authors' ``G_arch``/``D_arch``) and their validation.

Channel counts are multipliers of the base width ``ch``. Each function that checks parameters raises
ValueError with a message naming the parameter, so a recipe's validation reports it at its key path.
"""

from __future__ import annotations

from dataclasses import dataclass

RESOLUTIONS = (32, 64, 128, 256, 512)

G_OUT: dict[int, list[int]] = {
    32: [4, 4, 4],
    64: [16, 8, 4, 2],
    128: [16, 8, 4, 2, 1],
    256: [16, 8, 8, 4, 2, 1],
    512: [16, 8, 8, 4, 2, 1, 1],
}
"""Output multiplier of each generator up block (both variants); a block's input is the previous output, and the
first block's input equals its output (the 4×4 input layer's width)."""

D_OUT: dict[int, tuple[list[int], int]] = {
    32: ([4, 4, 4, 4], 2),
    64: ([1, 2, 4, 8, 16], 4),
    128: ([1, 2, 4, 8, 16, 16], 5),
    256: ([1, 2, 4, 8, 8, 16, 16], 6),
    512: ([1, 1, 2, 4, 8, 8, 16, 16], 7),
}
"""BigGAN's discriminator: output multiplier of each down block, and how many blocks (the first ones) downsample.
The first block reads the image. 512² is not in the authors' code: it follows the paper's Table 7 (the mirror
of the 512² generator, then a 16ch block without downsampling, as at the other resolutions)."""

DEEP_D: dict[int, tuple[int, list[int], int]] = {
    32: (4, [4, 4, 4], 2),
    64: (1, [2, 4, 8, 16], 4),
    128: (1, [2, 4, 8, 16, 16], 5),
    256: (1, [2, 4, 8, 8, 16, 16], 6),
    512: (1, [1, 2, 4, 8, 8, 16, 16], 7),
}
"""BigGAN-deep's discriminator: the 3×3 stem's multiplier, the output multiplier of each stage of two blocks, and how
many stages (the first ones) downsample. 512² is not in the authors' code: BigGAN's 512² list without its first
block, the same relation as at the other resolutions."""

Z_CHUNK = 20
"""Latent dimensions per chunk of BigGAN's hierarchical z (z dim 120 at 128², 140 at 256², 160 at 512²)."""
FLAT_Z_DIM = 128
"""Latent dimension without hierarchical z (the CIFAR-10 script) and of BigGAN-deep."""
DEEP_RATIO = 4
"""BigGAN-deep's bottleneck: a block's inner width is its input (G) or output (D) width divided by this."""


@dataclass(frozen=True)
class Block:
    """One resolution step of a network: channels in and out, whether it resamples, and its output side."""

    in_channels: int
    out_channels: int
    resample: bool
    side: int


def generator_blocks(ch: int, resolution: int) -> list[Block]:
    """The up blocks of either generator variant at ``resolution``, from the 4×4 input upward."""
    out = [m * ch for m in G_OUT[resolution]]
    return [Block(i, o, True, 8 * 2**k) for k, (i, o) in enumerate(zip([out[0], *out[:-1]], out))]


def discriminator_blocks(ch: int, resolution: int, channels: int) -> list[Block]:
    """BigGAN's down blocks at ``resolution``; the first one reads ``channels`` image channels."""
    multipliers, downsampling = D_OUT[resolution]
    out = [m * ch for m in multipliers]
    return _down_blocks([channels, *out[:-1]], out, downsampling, resolution)


def deep_discriminator_blocks(ch: int, resolution: int) -> tuple[int, list[Block]]:
    """BigGAN-deep's stem width and its stages (each two bottleneck blocks, the first resampling) at ``resolution``."""
    stem, multipliers, downsampling = DEEP_D[resolution]
    out = [m * ch for m in multipliers]
    return stem * ch, _down_blocks([stem * ch, *out[:-1]], out, downsampling, resolution)


def _down_blocks(ins: list[int], outs: list[int], downsampling: int, resolution: int) -> list[Block]:
    blocks, side = [], resolution
    for k, (i, o) in enumerate(zip(ins, outs)):
        side = side // 2 if k < downsampling else side
        blocks.append(Block(i, o, k < downsampling, side))
    return blocks


def default_z_dim(resolution: int, hierarchical: bool) -> int:
    """20 per chunk with hierarchical z (one chunk per block and one for the input layer), else 128."""
    return Z_CHUNK * (len(G_OUT[resolution]) + 1) if hierarchical else FLAT_Z_DIM


def check_resolution(resolution: int) -> None:
    """Raise unless BigGAN has an architecture for ``resolution``."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution = {resolution} is not supported; BigGAN's architectures are for "
                         f"{', '.join(map(str, RESOLUTIONS))}")


def check_classes(num_classes: int, shared_dim: int) -> None:
    """Raise when an unconditional generator is given a shared class embedding."""
    if shared_dim and not num_classes:
        raise ValueError(f"shared_dim = {shared_dim} but num_classes = 0: an unconditional generator has no class "
                         f"embedding; set shared_dim to 0")


def check_attention(attention: int | None, blocks: list[Block], network: str) -> None:
    """Raise unless ``attention`` is the output side of one of ``blocks``, wide enough for θ and φ (C/8 channels)."""
    if attention is None:
        return
    sides = sorted({b.side for b in blocks})
    width = next((b.out_channels for b in blocks if b.side == attention), None)
    if width is None:
        raise ValueError(f"attention = {attention}: the {network} has no block at {attention}×{attention}; its blocks "
                         f"output {', '.join(map(str, sides))} (or set attention to null)")
    if width < 8:
        raise ValueError(f"attention = {attention}: the {network}'s blocks there have {width} channels, fewer than the "
                         f"8 that the attention block's C/8 query and key channels need; raise ch")


def check_bottlenecks(blocks: list[Block], inner_of: str, network: str) -> None:
    """Raise if a BigGAN-deep block's inner width (its ``inner_of`` channels ÷ 4) would be zero."""
    narrowest = min(b.in_channels if inner_of == "input" else b.out_channels for b in blocks)
    if narrowest < DEEP_RATIO:
        raise ValueError(f"ch is too small: the {network}'s narrowest block has {narrowest} {inner_of} channels, and "
                         f"its bottleneck needs at least {DEEP_RATIO} ({narrowest}/{DEEP_RATIO} inner channels)")


def check_generator(ch: int, resolution: int, num_classes: int, z_dim: int | None, shared_dim: int,
                    hierarchical: bool, attention: int | None, **_: object) -> None:
    """Raise ValueError unless BigGAN's generator parameters fit together."""
    check_resolution(resolution)
    check_classes(num_classes, shared_dim)
    slots = len(G_OUT[resolution]) + 1
    if hierarchical and z_dim is not None and z_dim % slots:
        raise ValueError(f"z_dim = {z_dim} does not split into {slots} equal chunks (one for the input layer and one "
                         f"per up block at resolution {resolution}); use a multiple of {slots}, such as "
                         f"{Z_CHUNK * slots}, or set hierarchical to false")
    check_attention(attention, generator_blocks(ch, resolution), "generator")


def check_discriminator(ch: int, resolution: int, attention: int | None, channels: int, **_: object) -> None:
    """Raise ValueError unless BigGAN's discriminator parameters fit together."""
    check_resolution(resolution)
    check_attention(attention, discriminator_blocks(ch, resolution, channels), "discriminator")


def check_deep_generator(ch: int, resolution: int, num_classes: int, shared_dim: int, attention: int | None,
                         **_: object) -> None:
    """Raise ValueError unless BigGAN-deep's generator parameters fit together."""
    check_resolution(resolution)
    check_classes(num_classes, shared_dim)
    blocks = generator_blocks(ch, resolution)
    check_bottlenecks(blocks, "input", "generator")
    check_attention(attention, blocks, "generator")


def check_deep_discriminator(ch: int, resolution: int, attention: int | None, **_: object) -> None:
    """Raise ValueError unless BigGAN-deep's discriminator parameters fit together."""
    check_resolution(resolution)
    blocks = deep_discriminator_blocks(ch, resolution)[1]
    check_bottlenecks(blocks, "output", "discriminator")
    check_attention(attention, blocks, "discriminator")
