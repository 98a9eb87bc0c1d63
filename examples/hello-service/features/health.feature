@S-2
Feature: Health
  Operators need to know the service is up and which version runs.

  Scenario: The service reports its health and version
    Given the service is running
    When I ask for its health
    Then it says it is ok
