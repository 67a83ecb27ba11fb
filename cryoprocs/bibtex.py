# -*- coding: utf-8 -*-
"""
@misc{cryoprocs2026,
title = {cryoprocs: fast NumPy/SciPy processing protocols for Scipion},
author = {cryoprocs developers},
journal = {Scipion plugin scipion-em-cryoprocs},
year = {2026},
url = {https://github.com/cryoprocs/scipion-em-cryoprocs},
note = {scipion-em-cryoprocs}
}

@article{delaRosaTrevin2016,
title = {Scipion: A software framework toward integration, reproducibility and validation in 3D electron microscopy},
journal = {Journal of Structural Biology},
volume = {195},
number = {1},
pages = {93-99},
year = {2016},
doi = {https://doi.org/10.1016/j.jsb.2016.04.010},
author = {J.M. de la Rosa-Trevín and A. Quintana and L. del Cano and A. Zaldívar and I. Foche and J. Gutiérrez and J. Gómez-Blanco and J. Burguet-Castell and J. Cuenca-Alba and V. Abrishami and J. Vargas and J. Otón and G. Sharov and J.L. Vilas and J. Navas and P. Conesa and M. Kazemi and R. Marabini and C.O.S. Sorzano and J.M. Carazo}
}

@article{delaRosaTrevin2013,
title = {Xmipp 3.0: An improved software suite for image processing in electron microscopy},
journal = {Journal of Structural Biology},
volume = {184},
number = {2},
pages = {321-328},
year = {2013},
doi = {https://doi.org/10.1016/j.jsb.2013.09.015},
author = {J.M. de la Rosa-Trevín and J. Otón and R. Marabini and A. Zaldívar and J. Vargas and J.M. Carazo and C.O.S. Sorzano}
}

@incollection{Zuiderveld1994,
title = {Contrast Limited Adaptive Histogram Equalization},
booktitle = {Graphics Gems IV},
editor = {Paul S. Heckbert},
publisher = {Academic Press},
address = {San Diego},
pages = {474-485},
year = {1994},
doi = {https://doi.org/10.1016/B978-0-12-336156-1.50061-6},
author = {Karel Zuiderveld}
}

@article{Burt2024,
title = {An image processing pipeline for electron cryo-tomography in RELION-5},
journal = {FEBS Open Bio},
volume = {14},
number = {11},
pages = {1788-1804},
year = {2024},
doi = {https://doi.org/10.1002/2211-5463.13873},
author = {A. Burt and B. Toader and R. Warshamanage and A. von Kügelgen and E. Pyle and J. Zivanov and D. Kimanius and T.A.M. Bharat and S.H.W. Scheres}
}

@article{Grant2015,
title = {Measuring the optimal exposure for single particle cryo-EM using a 2.6 Å reconstruction of rotavirus VP6},
journal = {eLife},
volume = {4},
pages = {e06980},
year = {2015},
doi = {https://doi.org/10.7554/eLife.06980},
author = {T. Grant and N. Grigorieff}
}

@misc{cryoCAT,
title = {cryoCAT: Contextual Analysis Tools for cryoET and subtomogram averaging},
author = {Beata Turoňová and others},
journal = {Python package cryocat, version 0.7.1},
year = {2025},
howpublished = {https://github.com/turonova/cryoCAT},
url = {https://github.com/turonova/cryoCAT},
note = {version 0.7.1}
}

@article{Rickgauer2017,
title = {Single-protein detection in crowded molecular environments in cryo-EM images},
journal = {eLife},
volume = {6},
pages = {e25648},
year = {2017},
doi = {https://doi.org/10.7554/eLife.25648},
author = {J. Peter Rickgauer and Nikolaus Grigorieff and Winfried Denk}
}

@misc{copick,
title = {copick: a storage standard and Python API for collaborative cryo-ET annotation},
author = {Utz H. Ermel and Kyle I. S. Harrington and others},
journal = {Python package copick, version 1.2},
year = {2024},
howpublished = {https://github.com/copick/copick},
url = {https://github.com/copick/copick},
note = {version 1.2}
}
"""
