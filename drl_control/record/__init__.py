"""Recordings of robot runs as rosbag2-compatible MCAP files (no rclpy): writing, reading, plotting."""
