"""An analytic whole-body phantom: a patient as a painter's list of solid shapes in millimetres.

A ``Patient`` (``patients``: sex, height, girth, pose, organ sizes, proportions) becomes a list of ``Paint``
operations in the *body frame*: u = patient left (mm), v = posterior (mm), w = up from the soles (mm)
(``builder``, which paints ``body``, ``organs``, ``skeleton`` and ``lymph_nodes`` with the helpers of
``painter``). Shapes (``shapes``) are ellipsoids, capsules (tubes), vertical elliptic cylinders and a few
implicit regions (lungs, liver segments, iliac wings); later operations overwrite earlier ones, optionally
only where the current label is in an allowed set (lymph-node stations only replace fat and muscle).
``rasterizer.rasterize`` evaluates the list on any grid (the CT grid, the PET grid) through the patient's
pose on the table (``geometry``: shift, roll about the long axis, non-rigid stretch along it).

The map it returns holds *internal* labels (``tissues``): every public structure of
``data_contracts.anatomy`` keeps its label, and extra tissues the segmenter does not name get labels from
``EXTRA_BASE`` on; ``anatomy_lut()`` maps internal to public labels and ``TISSUES``/``tissue_of_label()``
give each label its CT and PET tissue class.

The generator is a separate sub-package: no pipeline stage imports ``tasks.synth`` (only ``petcap synth``,
the demo, the benchmark and tests do).
"""

from tasks.synth.phantom.builder import Builder, body_extent, build_phantom, structure_bounds
from tasks.synth.phantom.geometry import Grid, Pose
from tasks.synth.phantom.painter import ARMS_UP, SPINE_LEVELS, Level, proportions_warp
from tasks.synth.phantom.patients import REF_HEIGHT, Patient, reference_patient, sample_patient
from tasks.synth.phantom.rasterizer import SLAB_VOXELS, index_box, min_radius, rasterize
from tasks.synth.phantom.shapes import Capsule, Cylinder, Ellipsoid, Implicit, Paint, Profile, Shape, Slab
from tasks.synth.phantom.tissues import (EXTRA_BASE, LOBES, TISSUES, Tissue, anatomy_lut, internal_labels,
                                         n_labels, tissue_lut, tissue_of_label)

__all__ = [
    "Builder", "body_extent", "build_phantom", "structure_bounds", "Grid", "Pose", "ARMS_UP", "SPINE_LEVELS", "Level", "proportions_warp",
    "REF_HEIGHT", "Patient", "reference_patient", "sample_patient", "SLAB_VOXELS", "index_box", "min_radius",
    "rasterize", "Capsule", "Cylinder", "Ellipsoid", "Implicit", "Paint", "Profile", "Shape", "Slab",
    "EXTRA_BASE", "LOBES", "TISSUES", "Tissue", "anatomy_lut", "internal_labels", "n_labels", "tissue_lut",
    "tissue_of_label",
]
