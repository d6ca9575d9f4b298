"""The synergy ROS 2 node (built by the node issue; this entry point exists already)."""
import sys


def main() -> int:
    """Entry point of `synergy_node` / `ros2 run synergy_ros synergy_node`."""
    print("synergy_node: not built yet (issue 7: the ROS 2 node).", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
