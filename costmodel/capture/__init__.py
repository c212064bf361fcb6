"""nn.Module + input specs -> cost graph: the eager capture (default) and torch.fx's (imports
torch)."""
