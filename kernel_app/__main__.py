from kernel_app.interfaces.cli.main import main

main()
