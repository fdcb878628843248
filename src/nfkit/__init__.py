"""nfkit: neural functional networks, models on the weights of other networks that respect their symmetries.

The package reads as its dependency stack: :mod:`nfkit.groups` (symmetry groups),
:mod:`nfkit.spaces` (weight spaces), :mod:`nfkit.layers` (equivariant layers),
:mod:`nfkit.models` (the registry), :mod:`nfkit.testing` (the symmetry checker).
"""

from nfkit.spaces import Sine, WeightSpaceFeatures, WeightSpaceSpec, load_into, spec_of, weights_of

__version__ = "0.1.0"

__all__ = ["Sine", "WeightSpaceFeatures", "WeightSpaceSpec", "load_into", "spec_of", "weights_of", "__version__"]
