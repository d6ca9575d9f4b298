"""A managed (lifecycle) variant of synergy_node: configure, activate, deactivate, cleanup.

``python -m synergy_ros.ros.lifecycle --ros-args -p model:=...`` starts unconfigured; drive it
with ``ros2 lifecycle set /synergy_node configure`` (loads the model, creates publishers and
the worker), ``activate`` (subscribes to the camera; lifecycle publishers start publishing),
``deactivate`` (unsubscribes), ``cleanup`` (releases the model). The work itself is the same
:class:`~synergy_ros.ros.node.SynergyPipeline` as the plain node.
"""
from __future__ import annotations

import sys

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from synergy_ros.ros.node import SynergyPipeline, run_node


class LifecycleSynergyNode(SynergyPipeline, LifecycleNode):
    """synergy_node as a managed node; parameters are declared (and checked) at construction.

    Args:
        node_name: ROS node name.
        predictor: an already built Predictor used by every ``configure`` instead of loading
            one; ``cleanup`` keeps it open for the next ``configure``, the node closes it at
            shutdown / ``destroy_node``.
        **kwargs: passed to rclpy.lifecycle.LifecycleNode.
    """

    def __init__(self, node_name: str = "synergy_node", *, predictor=None, **kwargs) -> None:
        LifecycleNode.__init__(self, node_name, **kwargs)
        self._declare()
        self._given_predictor = predictor

    def _make_publisher(self, msg_type, topic: str, qos):
        return self.create_lifecycle_publisher(msg_type, topic, qos)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model, create the (inactive) publishers and the worker thread."""
        try:
            self._configure(self._given_predictor)
        except Exception as exc:  # noqa: BLE001 - report any load failure as FAILURE
            self.get_logger().error(f"configure failed: {' '.join(str(exc).split())}")
            self._cleanup(keep=self._given_predictor)
            self._destroy_publishers()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the camera and activate the publishers; on a failure partway, drop
        what was subscribed and stay inactive (FAILURE), with the reason in the log."""
        try:
            self._activate()
        except Exception as exc:  # noqa: BLE001 - report it as FAILURE, stay inactive
            self.get_logger().error(f"activate failed: {' '.join(str(exc).split())}")
            self._deactivate()
            return TransitionCallbackReturn.FAILURE
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe from the camera and deactivate the publishers."""
        self._deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker, release a loaded model (not an injected one) and the publishers."""
        self._cleanup(keep=self._given_predictor)
        self._destroy_publishers()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything from any state."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        """Unsubscribe, stop the worker and close the predictors, the injected one too."""
        self._deactivate()
        self._cleanup(keep=self._given_predictor)
        given, self._given_predictor = self._given_predictor, None
        if given is not None and hasattr(given, "close"):
            given.close()

    def _destroy_publishers(self) -> None:
        for channel in self._channels:
            for publisher in channel.pubs.values():
                self.destroy_lifecycle_publisher(publisher)
            channel.pubs = {}
        if getattr(self, "_diag_pub", None) is not None:
            self.destroy_publisher(self._diag_pub)
            self._diag_pub = None

    def destroy_node(self) -> None:
        """Stop the worker and release the model, then destroy the node."""
        self._release()
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    """Run the lifecycle node (unconfigured until a lifecycle manager configures it)."""
    return run_node(LifecycleSynergyNode, argv)


if __name__ == "__main__":
    sys.exit(main())
