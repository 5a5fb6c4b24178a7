"""The browser view of the arm (viser): robot model, goal, object and end-effector path (no rclpy)."""
