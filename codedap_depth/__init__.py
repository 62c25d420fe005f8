# SPDX-License-Identifier: Apache-2.0
"""codedap_depth: metric depth and an all-in-focus image from one coded-aperture photo."""

__version__ = "0.1.0"
