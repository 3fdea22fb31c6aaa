"""Cells that several test modules use, as native text."""

#: the best NB101 cell by validation accuracy, as in the authors' extrapolation script:
#: rows 0:{1,2,4,6} 1:{5} 2:{3} 3:{4} 4:{5} 5:{6}; ops input, conv3x3 x4, conv1x1, output (9 edges)
NB101_BEST = "ops=conv3x3,conv3x3,conv3x3,conv3x3,conv1x1;adj=0110101/0000010/0001000/0000100/0000010/0000001/0000000"
#: input -> conv3x3 -> output
NB101_TINY = "ops=conv3x3;adj=010/001/000"
#: a real NAS-Bench-101 cell with its official hash (first row of nasbench-vis's data-1k.json)
NB101_RECORD = {
    "hash": "00005c142e6f48ac74fdcf73e3439874",
    "ops": [
        "input",
        "conv3x3-bn-relu",
        "maxpool3x3",
        "conv3x3-bn-relu",
        "conv3x3-bn-relu",
        "conv1x1-bn-relu",
        "output",
    ],
    "adj": [
        [0, 1, 0, 0, 1, 1, 0],
        [0, 0, 1, 0, 0, 0, 0],
        [0, 0, 0, 1, 0, 0, 1],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    "val_acc_108": 0.9304887652397156,
    "params": 8555530,
}
