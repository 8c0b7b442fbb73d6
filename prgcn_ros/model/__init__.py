"""PR-GCN and its blocks (graph, GCN, TCN, PRM, GFM, TAM), the ST-GCN baseline, model files.

Nothing here imports rclpy or the message packages.
"""
from prgcn_ros.model.build import build_model, model_arch
from prgcn_ros.model.io import ModelFileError, load_model, save_model
from prgcn_ros.model.prgcn import PRGCN
from prgcn_ros.model.stgcn import STGCN

__all__ = ["PRGCN", "STGCN", "ModelFileError", "build_model", "load_model", "model_arch",
           "save_model"]
