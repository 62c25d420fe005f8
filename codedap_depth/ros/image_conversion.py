# SPDX-License-Identifier: Apache-2.0
"""sensor_msgs/Image <-> numpy with cv_bridge semantics (a thin wrapper of ``image_codec``).

``imgmsg_to_array`` is ``cv_bridge.imgmsg_to_cv2(msg, "passthrough")`` and ``array_to_imgmsg``
is ``cv_bridge.cv2_to_imgmsg(array, encoding)``; supported encodings are those of
``codedap_depth.image_codec.ENCODINGS``. Errors are ``ValueError`` with a message that says
what is wrong with the message.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from codedap_depth import messages
from codedap_depth.image_codec import decode_image
from codedap_depth.ros.messages import stamp_of, to_rclpy


def imgmsg_to_array(msg: Image) -> np.ndarray:
    """Decode ``msg`` into a native-endian [H, W] or [H, W, C] array (cv_bridge passthrough).

    Raises:
        ValueError: unknown encoding, empty image, step too small, or truncated / oversized data.
    """
    return decode_image(
        msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian)
    )


def array_to_imgmsg(
    image: np.ndarray,
    encoding: str,
    header: Header | None = None,
    *,
    step: int | None = None,
    bigendian: bool | None = None,
) -> Image:
    """Build an Image from ``image`` labelled ``encoding`` (cv_bridge ``cv2_to_imgmsg``).

    Args:
        image: [H, W] or [H, W, C] of the encoding's dtype and channel count.
        encoding: e.g. ``"rgb8"`` or ``"32FC1"``.
        header: copied into the message (stamp and frame_id); empty if ``None``.
        step: bytes per row; ``None`` packs rows tightly, larger values pad each row.
        bigendian: byte order of the data; ``None`` = host order (as cv_bridge).
    """
    return to_rclpy(messages.image(image, encoding, *stamp_of(header), step=step,
                                   bigendian=bigendian))
