"""`synergy replay`: play a rosbag2 to DDS with its recorded timing (no rosbag2 needed)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "publish a rosbag2's messages with their recorded timing (like `ros2 bag play`)"

EPILOG = """examples:
  synergy replay runs/demo/bag                       # real time, all topics
  synergy replay runs/demo/bag --rate 0.5 --loop     # half speed, forever (Ctrl-C stops)
  synergy replay robot.mcap --topics /camera/image_raw /camera/camera_info \\
      --remap /camera/image_raw:=/cam/image --start 12.5
On a machine with ROS 2 installed, `ros2 bag play <bag>` works just as well.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `synergy replay` flags."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("bag", type=Path, help="rosbag2 folder, .mcap / .db3 file, or ROS 1 .bag")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="speed factor (default 1.0 = recorded timing; 2 = twice as fast)")
    parser.add_argument("--loop", action="store_true", help="play again and again until Ctrl-C")
    parser.add_argument("--start", type=float, default=0.0, metavar="S",
                        help="skip the bag's first S seconds")
    parser.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                        help="publish topic FROM as TO (repeatable)")
    parser.add_argument("--topics", nargs="+", metavar="TOPIC",
                        help="play only these topics (default: all)")
    parser.add_argument("--qos-depth", type=int, default=100,
                        help="reliable keep-last history depth of each publisher (default 100)")
    parser.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="S",
                        help="wait up to S seconds for a subscriber on every topic first")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Play the bag; exit 0 at its end, 130 on Ctrl-C."""
    from synergy_ros.bags.player import ReplayOptions, parse_remap, replay_bag

    options = ReplayOptions(rate=args.rate, loop=args.loop, start_s=args.start,
                            remaps=dict(parse_remap(text) for text in args.remap),
                            topics=tuple(args.topics) if args.topics else None,
                            qos_depth=args.qos_depth)
    stats = replay_bag(args.bag, options, wait_for_subscribers_s=args.wait_for_subscribers,
                       show_progress=not args.no_progress)
    print(f"synergy replay: {stats.summary()}", file=sys.stderr)
    return 130 if stats.interrupted else 0
