"""Cells that several test modules use, as native text."""

#: the best NB101 cell by validation accuracy, as in the authors' extrapolation script:
#: rows 0:{1,2,4,6} 1:{5} 2:{3} 3:{4} 4:{5} 5:{6}; ops input, conv3x3 x4, conv1x1, output (9 edges)
NB101_BEST = "ops=conv3x3,conv3x3,conv3x3,conv3x3,conv1x1;adj=0110101/0000010/0001000/0000100/0000010/0000001/0000000"
#: input -> conv3x3 -> output
NB101_TINY = "ops=conv3x3;adj=010/001/000"
