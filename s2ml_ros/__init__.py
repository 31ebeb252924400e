"""S2ML depth completion for ROS 2: the network, its predictor, and the ROS node around them."""

__version__ = '0.1.0'
