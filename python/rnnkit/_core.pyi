"""Stubs of the compiled module rnnkit._core (cpp/src/bindings.cpp). Private: use rnnkit.functional."""

from typing import Optional

import numpy as np

__version__: str

def build_info() -> str: ...
def cpu_features() -> str: ...
def isa() -> str: ...
def blas_config() -> str: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def pool_threads() -> int: ...
def forward(
    cell: int, y: np.ndarray, h_n: np.ndarray, c_n: Optional[np.ndarray], xg: np.ndarray,
    xp: Optional[np.ndarray], h_prev: Optional[np.ndarray], c_prev: Optional[np.ndarray],
    hn: Optional[np.ndarray], x: np.ndarray, W_ih: np.ndarray, W_hh: np.ndarray,
    b_ih: Optional[np.ndarray], b_hh: Optional[np.ndarray], h0: np.ndarray, c0: Optional[np.ndarray],
    perm: np.ndarray, batch_sizes: np.ndarray, offsets: np.ndarray, reverse: bool, training: bool,
    dense: bool,
) -> None: ...
def backward(
    cell: int, dx: np.ndarray, dh0: np.ndarray, dc0: Optional[np.ndarray], dW_ih: np.ndarray,
    dW_hh: np.ndarray, db_ih: np.ndarray, db_hh: np.ndarray, dg: np.ndarray, dn: Optional[np.ndarray],
    x: np.ndarray, W_ih: np.ndarray, W_hh: np.ndarray, xg: np.ndarray, xp: Optional[np.ndarray],
    h_prev: np.ndarray, c_prev: Optional[np.ndarray], hn: Optional[np.ndarray], dy: np.ndarray,
    dh_n: np.ndarray, dc_n: Optional[np.ndarray], perm: np.ndarray, batch_sizes: np.ndarray,
    offsets: np.ndarray, reverse: bool, dense: bool,
) -> None: ...
