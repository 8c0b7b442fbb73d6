"""The ROS 2 nodes (thin: the work is in prgcn_ros' ROS-free modules)."""
from __future__ import annotations

import sys


def program_args(argv: list[str], program: str) -> list[str]:
    """``argv`` without the program name and the ROS arguments. ROS arguments that do not
    parse (a params file that does not open, a ``-p`` without its rule) end the program with
    one line and status 2, as a bad option of its own does, not rclpy's traceback."""
    # Imported here: a node installs its signal handlers before the heavy imports, this
    # package's included.
    import rclpy.utilities

    try:
        return rclpy.utilities.remove_ros_args(argv)[1:]
    except RuntimeError as error:         # rclpy's RCLInvalidROSArgsError
        reason = str(error).split(", at ")[0]      # rcl's C source positions left out
        if "params file" in reason:
            reason += " (a relative path is from the working directory)"
        print(f"{program}: {reason}", file=sys.stderr)
        raise SystemExit(2) from None
