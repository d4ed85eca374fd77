"""Readers of dataset formats (COCO, Pascal VOC, YOLO); `samples.read_dataset` picks one."""
