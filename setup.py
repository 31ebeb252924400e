from glob import glob
import os

from setuptools import find_packages, setup

package_name = 's2ml_ros'

setup(
    name=package_name,
    version='0.1.0',
    # Only the runtime package is installed; training/, bench/ and test/ run from the repository.
    packages=find_packages(include=[package_name, package_name + '.*']),
    package_data={package_name: ['weights/*.safetensors', 'weights/*.json']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        (os.path.join('share', package_name, 'launch'), glob('launch/*.launch.py')),
        (os.path.join('share', package_name, 'config'),
         glob('config/*.yaml') + glob('config/*.rviz') + glob('config/*.xml')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='s2ml_ros maintainers',
    maintainer_email='maintainers@s2ml-ros.dev',
    description='Live RGB-D depth completion for ROS 2 with S2ML.',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            's2ml_node = s2ml_ros.node:main',
            's2ml_bag_eval = s2ml_ros.bag_eval:main',
            's2ml_colour_offset = s2ml_ros.colour_offset_tool:main',
            's2ml_realsense = s2ml_ros.realsense_node:main',
            's2ml_realsense_offline = s2ml_ros.realsense_offline:main',
            's2ml_sim_camera = s2ml_ros.sim_camera_publisher:main',
            's2ml_demo = s2ml_ros.demo:main',
        ],
    },
)
