"""Proto-Value Networks (Farebrother et al., ICLR 2023): successor-measure auxiliary tasks pretrain an encoder
offline; a linear Q head on its frozen features is then trained online by double DQN.

Public API: ``PVNConfig``/``PVNTrainer`` (the run loop's agent), ``save_encoder``/``load_encoder`` (feature
export for other agents), the dataset writer/readers, and the pure pretraining/evaluation factories.
"""
from agents.pvn.config import DataConfig, PVNConfig
from agents.pvn.dataset import DQNReplayDataset, TransitionDataset, TransitionWriter
from agents.pvn.evaluate import LinearEvalConfig, make_online_learner
from agents.pvn.indicators import IndicatorConfig, make_indicators
from agents.pvn.networks import Encoder, EncoderConfig, EncoderSpec, PVNNetwork
from agents.pvn.export import load_encoder, save_encoder
from agents.pvn.pretrain import PretrainConfig, make_pretrainer
from agents.pvn.trainer import PVNTrainer

__all__ = ["DataConfig", "PVNConfig", "PVNTrainer", "load_encoder", "save_encoder", "DQNReplayDataset", "Encoder", "EncoderConfig", "EncoderSpec", "IndicatorConfig", "LinearEvalConfig", "PVNNetwork",
           "PretrainConfig", "TransitionDataset", "TransitionWriter", "make_indicators", "make_online_learner",
           "make_pretrainer"]
