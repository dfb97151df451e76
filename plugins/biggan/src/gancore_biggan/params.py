"""The parameter types both variants share, with their constraints and descriptions (the user's vocabulary)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from gancore_biggan.architecture import RESOLUTIONS
from gancore_biggan.layers import Init

Ch = Annotated[int, Field(gt=0, description="base width: every block's channels are a multiple of it "
                                            "(G_ch/D_ch: 64 for CIFAR-10, 96 for BigGAN at 128², 128 for BigGAN-deep)")]
Resolution = Annotated[int, Field(description=f"image side, one of {', '.join(map(str, RESOLUTIONS))}")]
Classes = Annotated[int, Field(ge=0, description="0 for an unconditional network")]
ZDim = Annotated[int | None, Field(gt=0, description="latent size; null: 20 per chunk with hierarchical z "
                                                      "(120 at 128²), else 128")]
SharedDim = Annotated[int, Field(ge=0, description="size of the class embedding shared by every conditional BN; "
                                                   "0: each conditional BN embeds the class itself (CIFAR-10 script)")]
Attention = Annotated[int | None, Field(gt=0, description="side of the resolution the self-attention block runs "
                                                          "at (64 at 128²); null: none")]
InitScheme = Annotated[Init, Field(description="weight initialisation: ortho (ImageNet), normal N(0, 0.02) "
                                               "(CIFAR-10) or xavier")]
BNEps = Annotated[float, Field(gt=0, description="ε of every BatchNorm")]
StandingStats = Annotated[int, Field(ge=0, description="batches of random latents whose average BatchNorm statistics "
                                                       "replace the running ones before sampling; 0: off")]
Channels = Annotated[int, Field(ge=1, le=4, description="image channels")]
